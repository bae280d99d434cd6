// Time for the scheduler, injected so that tests run days of schedules in milliseconds. The
// scheduler never reads Date.now() or arms a timer on its own: it asks its Clock. `systemClock` is
// the real one; `FakeClock` moves only when a test advances it, firing due timers in order.

export type TimerHandle = unknown;

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  clearTimeout(handle: TimerHandle): void;
}

// Node fires a timer longer than 2^31-1 ms at once; longer waits (a lock wait or retry delay of
// weeks) are chained through shorter timers.
const MAX_NODE_TIMER_MS = 2 ** 31 - 1;

interface SystemTimer {
  timer: ReturnType<typeof setTimeout> | undefined;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const handle: SystemTimer = { timer: undefined };
    let left = Math.max(0, ms);
    const step = (): void => {
      const part = Math.min(left, MAX_NODE_TIMER_MS);
      left -= part;
      handle.timer = setTimeout(left > 0 ? step : fn, part);
    };
    step();
    return handle;
  },
  clearTimeout: (handle) => clearTimeout((handle as SystemTimer).timer),
};

interface FakeTimer {
  id: number;
  due: number;
  fn: () => void;
}

/** Lets pending promise callbacks run: a macrotask turn drains every queued microtask. */
export async function settle(turns = 3): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class FakeClock implements Clock {
  private current: number;
  private timers: FakeTimer[] = [];
  private nextId = 1;

  constructor(start: number | Date = 0) {
    this.current = typeof start === 'number' ? start : start.getTime();
  }

  now(): number {
    return this.current;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer = { id: this.nextId++, due: this.current + Math.max(0, ms), fn };
    this.timers.push(timer);
    return timer.id;
  }

  clearTimeout(handle: TimerHandle): void {
    this.timers = this.timers.filter((t) => t.id !== handle);
  }

  /** Number of armed timers. */
  pending(): number {
    return this.timers.length;
  }

  /** When the earliest armed timer is due, if any. */
  nextDue(): number | undefined {
    return this.takeDue(Number.POSITIVE_INFINITY, false)?.due;
  }

  /**
   * Moves time forward by `ms`, firing every timer that falls due on the way in due order (ties in
   * the order they were set), including timers that callbacks set during the advance. Promise
   * callbacks do not run in between; use advanceAsync when the code under test awaits.
   */
  advance(ms: number): void {
    const target = this.current + ms;
    for (let t = this.takeDue(target, true); t !== undefined; t = this.takeDue(target, true)) {
      this.current = t.due;
      t.fn();
    }
    this.current = target;
  }

  /** Like advance, but lets promises settle before the first timer, between timers and at the end. */
  async advanceAsync(ms: number): Promise<void> {
    const target = this.current + ms;
    await settle();
    for (let t = this.takeDue(target, true); t !== undefined; t = this.takeDue(target, true)) {
      this.current = t.due;
      t.fn();
      await settle();
    }
    this.current = target;
    await settle();
  }

  /** advanceAsync up to an absolute instant (no-op when it is not in the future). */
  async advanceToAsync(at: Date | number): Promise<void> {
    const target = typeof at === 'number' ? at : at.getTime();
    await this.advanceAsync(Math.max(0, target - this.current));
  }

  private takeDue(limit: number, remove: boolean): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.timers) {
      if (t.due <= limit && (best === undefined || t.due < best.due || (t.due === best.due && t.id < best.id))) best = t;
    }
    if (best !== undefined && remove) this.timers = this.timers.filter((t) => t !== best);
    return best;
  }
}
