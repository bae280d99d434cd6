// In-memory backend: the reference implementation of the Storage contracts, used by unit tests and
// as the base of the fault-injecting and corrupting test backends.
import { BulwarkError } from '../errors.js';
import { describe, type Handle, type ObjectInfo, type ObjectKind, type Storage } from './storage.js';

export class MemoryStorage implements Storage {
  readonly location: string;
  private readonly objects = new Map<string, Buffer>();
  private created = false;

  constructor(name = 'memory') {
    this.location = `memory:${name}`;
  }

  private key(h: Handle): string {
    return `${h.kind}/${h.name}`;
  }

  async create(): Promise<void> {
    if (this.objects.has('config/config')) {
      throw new BulwarkError('REPO_EXISTS', `a repository already exists at ${this.location}`, { subject: this.location });
    }
    this.created = true;
  }

  get isCreated(): boolean {
    return this.created;
  }

  async *list(kind: ObjectKind): AsyncIterable<ObjectInfo> {
    const prefix = `${kind}/`;
    for (const [k, v] of [...this.objects]) {
      if (k.startsWith(prefix)) yield { name: k.slice(prefix.length), size: v.length };
    }
  }

  private get(h: Handle): Buffer {
    const v = this.objects.get(this.key(h));
    if (v === undefined) {
      throw new BulwarkError('OBJECT_NOT_FOUND', `${describe(h)} not found in ${this.location}`, { subject: describe(h) });
    }
    return v;
  }

  async stat(h: Handle): Promise<ObjectInfo> {
    return { name: h.name, size: this.get(h).length };
  }

  async read(h: Handle, offset = 0, length?: number): Promise<Buffer> {
    const v = this.get(h);
    const want = length ?? v.length - offset;
    if (offset < 0 || want < 0 || offset + want > v.length) {
      throw new BulwarkError('SHORT_READ', `${describe(h)}: wanted ${want} bytes at offset ${offset}, object has ${v.length}`, {
        subject: describe(h),
      });
    }
    return Buffer.from(v.subarray(offset, offset + want));
  }

  async write(h: Handle, data: Uint8Array): Promise<void> {
    const k = this.key(h);
    if (this.objects.has(k)) {
      throw new BulwarkError('OBJECT_EXISTS', `${describe(h)} already exists in ${this.location}`, { subject: describe(h) });
    }
    this.objects.set(k, Buffer.from(data));
  }

  async delete(h: Handle): Promise<void> {
    this.get(h);
    this.objects.delete(this.key(h));
  }

  async close(): Promise<void> {}

  /** Test helper: direct access to stored bytes (for corruption tests). */
  raw(h: Handle): Buffer | undefined {
    return this.objects.get(this.key(h));
  }
}
