/**
 * @module test/helpers/certs
 * Self-signed certificates made at test time with the openssl CLI, in a temporary directory removed after.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TestCert {
  /** PEM certificate. */
  cert: string;
  /** PEM private key. */
  key: string;
}

export interface CertDir {
  /** A self-signed certificate whose subject CN is `cn` and whose SANs are `dnsNames` (default: the CN). */
  make(cn: string, dnsNames?: string[]): TestCert;
  remove(): void;
}

/** A fresh directory under the OS temp dir to make certificates in. */
export function certDir(): CertDir {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-certs-'));
  let n = 0;
  return {
    make(cn, dnsNames = [cn]) {
      n++;
      const keyFile = join(dir, `${n}.key`);
      const certFile = join(dir, `${n}.crt`);
      execFileSync(
        'openssl',
        [
          'req', '-x509', '-nodes', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
          '-keyout', keyFile, '-out', certFile, '-days', '2',
          '-subj', `/CN=${cn}`,
          '-addext', `subjectAltName=${dnsNames.map((d) => `DNS:${d}`).join(',')}`,
        ],
        { stdio: ['ignore', 'ignore', 'pipe'], timeout: 20000 },
      );
      return { cert: readFileSync(certFile, 'utf8'), key: readFileSync(keyFile, 'utf8') };
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
