/**
 * @module control/bootstrap
 * First start: with no user in the store, create the superadmin `admin` with the password from
 * GATEHOUSE_ADMIN_PASSWORD, or a random one written to <dataDir>/initial-admin-password (mode 0600) and
 * printed once. There are no default credentials.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Store } from '../store/types.js';
import { hashPassword, newId, newPassword } from './secrets.js';

export interface BootstrapResult {
  created: boolean;
  /** The file the random password was written to, when one was made. */
  passwordFile: string | null;
  /** The random password (to print once), when one was made. */
  password: string | null;
}

export async function bootstrapAdmin(store: Store, dataDir: string, log: Logger, env: NodeJS.ProcessEnv = process.env): Promise<BootstrapResult> {
  if ((await store.listUsers()).length > 0) return { created: false, passwordFile: null, password: null };
  const given = env.GATEHOUSE_ADMIN_PASSWORD;
  if (given !== undefined && given.length < 12) throw new Error('GATEHOUSE_ADMIN_PASSWORD must be at least 12 characters');
  const password = given ?? newPassword();
  await store.createUser(
    { id: newId(), username: 'admin', passwordHash: await hashPassword(password), superadmin: true, disabled: false },
    { actor: 'gatehouse', source: 'bootstrap', tenant: null, kind: 'user', entityId: 'admin', action: 'user.create', before: null, after: { username: 'admin', superadmin: true } },
  );
  if (given !== undefined) {
    log.info({ user: 'admin' }, 'created the first admin user with the password from GATEHOUSE_ADMIN_PASSWORD');
    return { created: true, passwordFile: null, password: null };
  }
  const file = join(dataDir, 'initial-admin-password');
  writeFileSync(file, `${password}\n`, { mode: 0o600, flag: 'w' });
  log.warn({ user: 'admin', passwordFile: file }, 'created the first admin user with a random password (in the file; change it after logging in)');
  return { created: true, passwordFile: file, password };
}
