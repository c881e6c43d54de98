/**
 * @module process/discovery-messages
 * The primary's discovery messages to its workers (node:cluster IPC, beside sync/messages' PrimaryToWorker):
 * a key's new node list, or null when no upstream uses the key any more. A new worker gets every known list
 * before its first config, so that config starts with them.
 */
import type { DiscoveredNode } from '../discovery/types.js';

export interface NodesMessage {
  t: 'nodes';
  key: string;
  nodes: DiscoveredNode[] | null;
}
