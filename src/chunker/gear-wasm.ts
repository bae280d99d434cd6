// The FastCDC cut-point search of fastcdc.ts compiled to WebAssembly: the same gear hash, masks and
// normalization, but about 2.5 times faster than the JavaScript loop, which matters for large files
// and database dumps (a chunker reads every byte past the minimum size). The chunk worker reads
// file data straight into the module's memory, so nothing is copied for the search.
//
// The module is gear.wat (next to this file), compiled with `wat2wasm gear.wat`; its bytes are
// embedded below so that nothing is built or loaded at run time. Tests check that it cuts exactly
// where the JavaScript Chunker does.
import type { Chunker } from './fastcdc.js';

const GEAR_WASM = 'AGFzbQEAAAABDAFgB39/f39/f38BfwMCAQAFAwEAAQcQAgZtZW1vcnkCAANjdXQAAAqwAQGtAQEHfyABIABrIQcgByACTQRAIAcPCyAHIAQgByAESRshCCAIIAMgCCADSRshCSAAIAJqIQsgACAJaiEMIAAgCGohDQJAA0AgCyAMTw0BIApBAXQgCy0AAEECdCgCAGohCiALQQFqIQsgCiAFcQ0AIAsgAGsPCwsCQANAIAsgDU8NASAKQQF0IAstAABBAnQoAgBqIQogC0EBaiELIAogBnENACALIABrDwsLIAgL';

// The compile target's libraries carry no WebAssembly types; these are the parts used here.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
};
interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

/** Bytes at the start of the module's memory that hold the gear table (256 x int32). */
const GEAR_BYTES = 1024;
const PAGE = 65536;

/** A chunker with its own data buffer in WebAssembly memory. */
export class WasmChunkBuffer {
  /** The data buffer: fill it, then call `cut` with positions inside it. */
  readonly buf: Buffer;
  private readonly cutFn: (start: number, end: number, min: number, avg: number, max: number, maskS: number, maskL: number) => number;
  private readonly min: number;
  private readonly avg: number;
  private readonly max: number;
  private readonly maskS: number;
  private readonly maskL: number;

  constructor(chunker: Chunker, size: number) {
    ({ min: this.min, avg: this.avg, max: this.max } = chunker);
    [this.maskS, this.maskL] = chunker.masks;
    const module = new WebAssembly.Module(Buffer.from(GEAR_WASM, 'base64'));
    const instance = new WebAssembly.Instance(module, {});
    const memory = instance.exports['memory'] as WasmMemory;
    const need = Math.ceil((GEAR_BYTES + size) / PAGE);
    const have = memory.buffer.byteLength / PAGE;
    if (need > have) memory.grow(need - have);
    // The memory never grows again, so these views stay valid.
    // WebAssembly memory is little-endian whatever the host's byte order.
    const table = new DataView(memory.buffer, 0, GEAR_BYTES);
    chunker.gearTable.forEach((v, i) => table.setInt32(i * 4, v, true));
    this.buf = Buffer.from(memory.buffer, GEAR_BYTES, size);
    this.cutFn = instance.exports['cut'] as WasmChunkBuffer['cutFn'];
  }

  /** Same contract as Chunker.cut, for the bytes buf[start, end). */
  cut(start: number, end: number): number {
    return this.cutFn(GEAR_BYTES + start, GEAR_BYTES + end, this.min, this.avg, this.max, this.maskS, this.maskL);
  }
}
