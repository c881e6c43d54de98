// nginx configurations generated at run time: the upstream (origin) and the nginx reverse proxy under test.
// Both run in the foreground as the current user with their own prefix directory; every path in the
// configuration is relative to that prefix.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startProcess } from './procs.mjs';
import { HOST } from './http.mjs';

function userLine() {
  // A master started as root switches its workers to "nobody", which could not read the prefix directory
  // (mode 0700 from mkdtemp); keep the workers as the current user instead.
  if (typeof process.getuid === 'function' && process.getuid() === 0) return `user ${os.userInfo().username};\n`;
  return '';
}

const COMMON_HTTP = `
    access_log off;
    keepalive_timeout 75s;
    keepalive_requests 10000000;
    client_body_temp_path tmp/client_body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    default_type application/octet-stream;
`;

function prepare(prefix) {
  fs.mkdirSync(path.join(prefix, 'tmp'), { recursive: true });
  fs.mkdirSync(path.join(prefix, 'conf'), { recursive: true });
}

/** The body sizes: path on the upstream and the exact body length. */
export const BODIES = {
  small: { path: '/hello', length: 12, label: 'small body ("hello world\\n", 12 B)' },
  '4k': { path: '/static/4k.bin', length: 4096, label: '4 KiB static file' },
  '64k': { path: '/static/64k.bin', length: 65536, label: '64 KiB static file' },
};

export function writeUpstream(prefix, port) {
  prepare(prefix);
  const www = path.join(prefix, 'www', 'static');
  fs.mkdirSync(www, { recursive: true });
  const pattern = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_\n');
  for (const [name, size] of [['4k.bin', 4096], ['64k.bin', 65536]]) {
    const buf = Buffer.alloc(size);
    for (let i = 0; i < size; i++) buf[i] = pattern[i % pattern.length];
    fs.writeFileSync(path.join(www, name), buf);
  }
  const conf = `${userLine()}worker_processes 1;
events { worker_connections 8192; }
http {${COMMON_HTTP}
    sendfile on;
    tcp_nopush on;
    server {
        listen ${HOST}:${port} backlog=4096;
        location / { default_type text/plain; return 200 "hello world\\n"; }
        location /static/ { root www; }
    }
}
`;
  fs.writeFileSync(path.join(prefix, 'conf', 'nginx.conf'), conf);
}

export function writeProxy(prefix, port, upstreamPort) {
  prepare(prefix);
  const conf = `${userLine()}worker_processes 1;
events { worker_connections 8192; }
http {${COMMON_HTTP}
    upstream up {
        server ${HOST}:${upstreamPort};
        keepalive 512;
        keepalive_requests 10000000;
    }
    server {
        listen ${HOST}:${port} backlog=4096;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffer_size 16k;
            proxy_buffers 8 16k;
        }
    }
}
`;
  fs.writeFileSync(path.join(prefix, 'conf', 'nginx.conf'), conf);
}

export function startNginx(name, prefix, cpu, bin = 'nginx') {
  const pid = path.join(prefix, 'nginx.pid');
  return startProcess(
    name,
    bin,
    ['-e', 'stderr', '-p', prefix + '/', '-c', 'conf/nginx.conf', '-g', `daemon off; master_process on; pid ${pid}; error_log stderr warn;`],
    { cpu, logPath: path.join(prefix, 'nginx.log') },
  );
}
