/**
 * @module plugins/load
 * The registry a process uses: the built-in plugins plus the custom ones from the settings' directory.
 */
import type { Settings } from '../config/settings.js';
import { loadPluginDirectory, type PluginRegistry } from '../dataplane/plugins/registry.js';
import { builtinRegistry } from './index.js';

export async function loadPlugins(settings: Settings): Promise<PluginRegistry> {
  const registry = builtinRegistry();
  if (settings.plugins.directory) await loadPluginDirectory(settings.plugins.directory, registry);
  return registry;
}
