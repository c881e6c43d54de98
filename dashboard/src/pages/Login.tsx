/** The login page: user name and password; the session cookie is set by the API, the CSRF token kept in memory. */
import { useState } from 'react';
import { Alert, Anchor, Button, Center, Group, Paper, PasswordInput, Stack, Text, TextInput, Title } from '@mantine/core';
import { IconAlertTriangle } from '@tabler/icons-react';
import { ApiError } from '../api';
import { useAuth } from '../session';

export function LoginPage() {
  const { login } = useAuth();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  return (
    <Center mih="100vh" bg="var(--mantine-color-body)" p="md">
      <Stack w={380} gap="lg">
        <Group gap={10} justify="center">
          <img src="/favicon.svg" width={40} height={40} alt="" />
          <Title order={2}>Gatehouse</Title>
        </Group>
        <Paper withBorder shadow="sm" p="xl" radius="md">
          <form
            onSubmit={(e) => {
              e.preventDefault();
              setBusy(true);
              setError(null);
              login(username, password)
                .catch((err) => {
                  if (err instanceof ApiError && err.code === 'GH_ERR_ADMIN_LOGIN_LIMITED') setError('Too many failed logins. Wait a few minutes and try again.');
                  else if (err instanceof ApiError && err.status === 401) setError('Wrong user name or password.');
                  else setError(err instanceof Error ? err.message : String(err));
                })
                .finally(() => setBusy(false));
            }}
          >
            <Stack>
              <Title order={4}>Log in</Title>
              {error && (
                <Alert color="red" icon={<IconAlertTriangle size={18} />} data-testid="login-error">
                  {error}
                </Alert>
              )}
              <TextInput label="User name" autoComplete="username" required value={username} onChange={(e) => setUsername(e.currentTarget.value)} autoFocus />
              <PasswordInput label="Password" autoComplete="current-password" required value={password} onChange={(e) => setPassword(e.currentTarget.value)} />
              <Button type="submit" loading={busy} fullWidth>
                Log in
              </Button>
            </Stack>
          </form>
        </Paper>
        <Text size="xs" c="dimmed" ta="center">
          The first start prints the <code>admin</code> password once and writes it to <code>data/initial-admin-password</code>. Scripts use{' '}
          <Anchor size="xs" href="/api/v1/openapi.json">
            the admin API
          </Anchor>{' '}
          with a token.
        </Text>
      </Stack>
    </Center>
  );
}
