/**
 * @module model/reference
 * The generated reference pages (docs/reference/*.md): what `npm run docs` writes and the test compares.
 */
import { Upstream } from './upstream.js';
import { Route } from './route.js';
import { Service } from './service.js';
import { Consumer } from './consumer.js';
import { Certificate } from './certificate.js';
import { Settings } from '../config/settings.js';
import { renderSchemaTables } from './docs.js';

const HEADER = '<!-- Generated from the schemas in src/model and src/config by `npm run docs`. Do not edit by hand. -->\n\n';

export function referencePages(): Record<string, string> {
  return {
    'declarative.md':
      `${HEADER}# Declarative file reference\n\nThe declarative file has the top-level lists \`upstreams\`, \`routes\`, \`services\`, \`consumers\`, \`certificates\` and the map \`globalPlugins\`. ` +
      'Field names are camelCase, plugin names kebab-case. Durations are milliseconds unless a field says otherwise.\n\n' +
      `## Routes\n\n${renderSchemaTables('route', Route, 'routes[]')}\n## Upstreams\n\n${renderSchemaTables('upstream', Upstream, 'upstreams[]')}\n` +
      `## Services\n\n${renderSchemaTables('service', Service, 'services[]')}\n## Consumers\n\n${renderSchemaTables('consumer', Consumer, 'consumers[]')}\n` +
      `## Certificates\n\n${renderSchemaTables('certificate', Certificate, 'certificates[]')}`,
    'settings.md':
      `${HEADER}# Static settings reference (gatehouse.yaml)\n\nEvery key can be overridden by an environment variable: \`GATEHOUSE_\` plus the key path in upper snake case ` +
      '(`proxy.http` -> `GATEHOUSE_PROXY_HTTP`, `instanceId` -> `GATEHOUSE_INSTANCE_ID`, `accessLog.enabled` -> `GATEHOUSE_ACCESS_LOG_ENABLED`; lists as comma-separated values or JSON). ' +
      'Command-line flags override both.\n\n' +
      renderSchemaTables('settings', Settings, ''),
  };
}
