// Which blobs a backup's chunk workers have already put into their open packs. Each worker
// assembles its own data packs, so two workers that meet the same new chunk at about the same time
// must agree on who stores it: the first to claim the ID does, the other skips it.
//
// The set is a fixed-size table in shared memory (64 Ki slots, about 2.4 MiB), so it never grows
// with the backup. It may forget: when a probe run is full, the oldest-looking slot is overwritten,
// and a later claim of a forgotten ID succeeds again, which stores the blob twice (wasted bytes
// that prune removes, never a missing blob). It never claims falsely: `claim` returns false only
// if the slot holds exactly this ID, i.e. some worker has appended the blob to a pack that the
// backup stores before it writes its snapshot. Once that pack is stored the blob is in the
// repository index, which the workers read live, and the claim no longer matters.
//
// Each slot has a lock word (Atomics compare-exchange: 0 free, 1 locked) guarding its ID bytes and
// its occupied flag, so an ID is never read half written.
import { ID_LEN } from './blob-index.js';

const SLOTS = 1 << 16;
const PROBE = 8;
const LOCKED = 1;

export interface ClaimSetView {
  buf: SharedArrayBuffer;
}

export function createClaimSet(): ClaimSetView {
  // Per slot: one Int32 lock word and one Int32 occupied flag, then the IDs.
  return { buf: new SharedArrayBuffer(SLOTS * 8 + SLOTS * ID_LEN) };
}

export class ClaimSet {
  private readonly words: Int32Array;
  private readonly ids: Uint8Array;
  constructor(view: ClaimSetView) {
    this.words = new Int32Array(view.buf, 0, SLOTS * 2);
    this.ids = new Uint8Array(view.buf, SLOTS * 8, SLOTS * ID_LEN);
  }

  private lock(slot: number): void {
    while (Atomics.compareExchange(this.words, slot * 2, 0, LOCKED) !== 0) {
      // Held for a few dozen instructions by another thread: spin.
    }
  }

  private unlock(slot: number): void {
    Atomics.store(this.words, slot * 2, 0);
  }

  private holds(slot: number, id: Uint8Array): boolean {
    const base = slot * ID_LEN;
    for (let i = 0; i < ID_LEN; i++) if (this.ids[base + i] !== id[i]) return false;
    return true;
  }

  /** True if the caller is the first to claim `id` (it must then store the blob). */
  claim(id: Uint8Array): boolean {
    // IDs are keyed hashes: their bytes are uniformly distributed, so any four make a good hash.
    const start = (id[4]! | (id[5]! << 8) | (id[6]! << 16) | (id[7]! << 24)) & (SLOTS - 1);
    for (let i = 0; i < PROBE; i++) {
      const slot = (start + i) & (SLOTS - 1);
      this.lock(slot);
      const used = this.words[slot * 2 + 1] !== 0;
      if (used && this.holds(slot, id)) {
        this.unlock(slot);
        return false;
      }
      if (!used) {
        this.ids.set(id, slot * ID_LEN);
        this.words[slot * 2 + 1] = 1;
        this.unlock(slot);
        return true;
      }
      this.unlock(slot);
    }
    // The probe run is full: forget one entry (chosen by the ID itself, so workers spread evictions).
    const slot = (start + (id[8]! % PROBE)) & (SLOTS - 1);
    this.lock(slot);
    if (this.holds(slot, id)) {
      this.unlock(slot);
      return false;
    }
    this.ids.set(id, slot * ID_LEN);
    this.unlock(slot);
    return true;
  }
}
