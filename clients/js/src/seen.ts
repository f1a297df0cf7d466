/** Ids of unstored events already handed to the app, to drop their duplicates. */

/** Ids remembered at most; the oldest is forgotten first. */
const SEEN_IDS_MAX = 1_000;

export class SeenIds {
  #ids = new Set<string>();

  /** True the first time `id` is seen (an event without an id always passes). */
  firstSight(id: unknown): boolean {
    if (typeof id !== "string") return true;
    if (this.#ids.has(id)) return false;
    this.#ids.add(id);
    if (this.#ids.size > SEEN_IDS_MAX) {
      const oldest = this.#ids.values().next().value;
      if (oldest !== undefined) this.#ids.delete(oldest);
    }
    return true;
  }
}
