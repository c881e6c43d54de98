/** The dashboard's entry: theme, CSP nonce for injected styles, notifications, modals, and the router. */
import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { createTheme, localStorageColorSchemeManager, MantineProvider } from '@mantine/core';
import { ModalsProvider } from '@mantine/modals';
import { Notifications } from '@mantine/notifications';
import { setNonce } from 'get-nonce';
import { BrowserRouter } from 'react-router';
import '@mantine/core/styles.css';
import '@mantine/notifications/styles.css';
import '@mantine/charts/styles.css';
import { App } from './App';
import { AuthProvider } from './session';

// The control plane answers index.html with a fresh nonce in <meta property="csp-nonce"> and allows only
// styles carrying it: Mantine's CSS variables and the scroll lock of modals are <style> elements made here.
const nonce = (document.querySelector('meta[property="csp-nonce"]') as HTMLMetaElement | null)?.nonce || undefined;
if (nonce) setNonce(nonce);

const theme = createTheme({
  primaryColor: 'indigo',
  defaultRadius: 'md',
  fontFamily: 'Inter, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif',
  fontFamilyMonospace: 'ui-monospace, "SF Mono", Menlo, Consolas, monospace',
  headings: { fontWeight: '650' },
});

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <MantineProvider theme={theme} defaultColorScheme="auto" colorSchemeManager={localStorageColorSchemeManager({ key: 'gh.color-scheme' })} getStyleNonce={() => nonce ?? ''}>
      <ModalsProvider>
        {/* Bottom right: at the top they covered the header's user menu, and hovering one holds it open. */}
        <Notifications position="bottom-right" limit={4} />
        <BrowserRouter>
          <AuthProvider>
            <App />
          </AuthProvider>
        </BrowserRouter>
      </ModalsProvider>
    </MantineProvider>
  </StrictMode>,
);
