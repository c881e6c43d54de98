/**
 * @module discovery/watch-set
 * The running watches of one backend: each is started when added and handed to its caller as a
 * DiscoveryWatch whose close() also forgets it; the backend's close() stops whatever is left.
 */
import type { DiscoveryWatch } from './types.js';

export interface RunningWatch {
  start(): void;
  close(): void;
}

export class WatchSet {
  readonly #watches = new Set<RunningWatch>();

  /** Start `w` and return the handle the caller closes it with. */
  run(w: RunningWatch): DiscoveryWatch {
    this.#watches.add(w);
    w.start();
    return {
      close: () => {
        this.#watches.delete(w);
        w.close();
      },
    };
  }

  closeAll(): void {
    for (const w of this.#watches) w.close();
    this.#watches.clear();
  }
}
