/**
 * @module dataplane/tls
 * SNI certificate table: compiled once per config into secure contexts, looked up per TLS handshake.
 */
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Certificate } from '../model/certificate.js';

export class CertificateTable {
  private readonly exact = new Map<string, SecureContext>();
  /** Keyed by the part after "*." */
  private readonly wildcard = new Map<string, SecureContext>();

  constructor(certs: Certificate[], alpn: string[]) {
    for (const c of certs) {
      const ctx = createSecureContext({ cert: c.cert, key: c.key });
      // ALPN is negotiated on the server, but a secure context per cert keeps the chain with its key.
      void alpn;
      for (const sni of c.snis) {
        const name = sni.toLowerCase();
        if (name.startsWith('*.')) this.wildcard.set(name.slice(2), ctx);
        else this.exact.set(name, ctx);
      }
    }
  }

  get size(): number {
    return this.exact.size + this.wildcard.size;
  }

  /** Exact name first, then the wildcard one label up ("*.example.com" serves "a.example.com" only). */
  lookup(servername: string): SecureContext | undefined {
    const name = servername.toLowerCase();
    const hit = this.exact.get(name);
    if (hit) return hit;
    const dot = name.indexOf('.');
    return dot === -1 ? undefined : this.wildcard.get(name.slice(dot + 1));
  }
}
