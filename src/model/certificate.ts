/**
 * @module model/certificate
 * Certificate: a PEM certificate and key served for the listed SNI names on the HTTPS port.
 */
import { Type, type Static } from '@sinclair/typebox';
import { Id, Labels } from './common.js';

export const Certificate = Type.Object(
  {
    id: Id,
    labels: Type.Optional(Labels),
    snis: Type.Array(Type.String({ minLength: 1, maxLength: 253, pattern: '^(\\*\\.)?[A-Za-z0-9_.-]+$' }), {
      minItems: 1,
      maxItems: 1024,
      description: 'Server names this certificate is served for, exact or wildcard ("*.example.com").',
    }),
    cert: Type.String({ minLength: 1, description: 'PEM certificate chain.' }),
    key: Type.String({ minLength: 1, description: 'PEM private key (write-only in the admin API).', writeOnly: true }),
  },
  { additionalProperties: false, description: 'A TLS certificate selected by SNI.' },
);
export type Certificate = Static<typeof Certificate>;
