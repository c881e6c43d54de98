// Build of the dashboard: a static single-page app under dist/, served by the control plane at /.
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  plugins: [react()],
  base: '/',
  html: {
    // Every <script>, <style> and <link> in index.html gets nonce="..." and a <meta property="csp-nonce">
    // is added; the control plane puts a fresh nonce in place of this placeholder on each response, and
    // the Content-Security-Policy allows styles with that nonce only (Mantine injects its CSS variables).
    cspNonce: 'GATEHOUSE_CSP_NONCE',
  },
  build: {
    // The browsers the component library (Mantine) supports; docs/dashboard.md says the same.
    target: ['chrome108', 'edge108', 'firefox101', 'safari15.4'],
    outDir: 'dist',
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
    // No inline scripts or data: modules, so the CSP can say script-src 'self'.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
  server: {
    // `npm run dev` against a control plane on the default port.
    proxy: { '/api': 'http://127.0.0.1:9180', '/admin': 'http://127.0.0.1:9180' },
  },
});
