// A fault-injecting HTTP proxy for S3 tests: forwards every request unchanged (headers included,
// so SigV4 signatures stay valid) to an upstream endpoint, except those it is told to spoil:
//   'drop'         close the client connection before forwarding anything (request never ran);
//   'lose-reply'   forward the request, let the server complete it, then close the client
//                  connection instead of answering (the outcome is unknown to the client);
//   'slowdown'     answer 503 SlowDown without forwarding;
//   'error500'     answer 500 InternalError without forwarding;
//   'stall'        accept the request and never answer (until `stallMs`, then close): the
//                  client's timeout must fire;
//   'cut'          forward the headers and about half of the body, then close both connections:
//                  an upload interrupted mid-way.
// Faults fire by rate (a seeded PRNG over requests that match `match`) or for chosen request
// numbers (1-based, counting every request the proxy sees). Counters of requests by
// method and fault are kept, so the proxy also serves as a request counter (bench/s3.ts).
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault = 'drop' | 'lose-reply' | 'slowdown' | 'error500' | 'stall' | 'cut';

export interface ProxyRequestInfo {
  n: number;
  method: string;
  url: string;
  contentLength: number;
}

export interface FaultPlan {
  /** Fraction of matching requests to spoil, each with a fault drawn from `faults`. */
  rate?: number;
  faults?: readonly Fault[];
  /** Only requests for which this is true are candidates for `rate`. */
  match?: (r: ProxyRequestInfo) => boolean;
  /** Spoil exactly these request numbers (1-based) with the given fault. */
  nth?: ReadonlyMap<number, Fault>;
  /** Answer these requests with a canned response instead of forwarding them (checked first). */
  respond?: (r: ProxyRequestInfo) => { status: number; body?: string; headers?: Record<string, string> } | undefined;
  /** Decide per request; returning a fault overrides rate and nth. */
  decide?: (r: ProxyRequestInfo) => Fault | undefined;
  seed?: number;
  /** How long a stalled request is held before its connection is closed (default 60 s). */
  stallMs?: number;
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function s3Error(code: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?><Error><Code>${code}</Code><Message>injected by fault-proxy</Message><RequestId>fault</RequestId></Error>`;
}

export class FaultProxy {
  private server: http.Server | undefined;
  private plan: FaultPlan = {};
  private random: () => number = mulberry32(1);
  private readonly upstream: URL;
  private readonly held = new Set<NodeJS.Timeout>();
  requests = 0;
  readonly byMethod: Record<string, number> = {};
  readonly faultsFired: Record<string, number> = {};
  /** Bytes of request bodies forwarded and response bodies returned. */
  bytesUp = 0;
  bytesDown = 0;
  port = 0;

  constructor(upstream: string) {
    this.upstream = new URL(upstream);
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  setPlan(plan: FaultPlan): void {
    this.plan = plan;
    this.random = mulberry32(plan.seed ?? 1);
  }

  get totalFaults(): number {
    return Object.values(this.faultsFired).reduce((a, b) => a + b, 0);
  }

  async start(port = 0): Promise<this> {
    const server = http.createServer((req, res) => this.handle(req, res));
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve());
    });
    this.server = server;
    this.port = (server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const t of this.held) clearTimeout(t);
    this.held.clear();
    const s = this.server;
    this.server = undefined;
    if (s === undefined) return;
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }

  private choose(info: ProxyRequestInfo): Fault | undefined {
    const p = this.plan;
    const d = p.decide?.(info);
    if (d !== undefined) return d;
    const n = p.nth?.get(info.n);
    if (n !== undefined) return n;
    if (p.rate !== undefined && p.rate > 0 && (p.match === undefined || p.match(info))) {
      if (this.random() < p.rate) {
        const fs = p.faults ?? ['drop', 'slowdown', 'lose-reply'];
        return fs[Math.floor(this.random() * fs.length)];
      }
    }
    return undefined;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const n = ++this.requests;
    const method = req.method ?? 'GET';
    this.byMethod[method] = (this.byMethod[method] ?? 0) + 1;
    const info: ProxyRequestInfo = { n, method, url: req.url ?? '/', contentLength: Number(req.headers['content-length'] ?? 0) };
    const canned = this.plan.respond?.(info);
    if (canned !== undefined) {
      this.faultsFired['respond'] = (this.faultsFired['respond'] ?? 0) + 1;
      req.resume();
      req.on('end', () => {
        res.writeHead(canned.status, { 'content-type': 'application/xml', ...canned.headers });
        res.end(canned.body ?? '');
      });
      return;
    }
    const fault = this.choose(info);
    if (fault !== undefined) this.faultsFired[fault] = (this.faultsFired[fault] ?? 0) + 1;
    switch (fault) {
      case 'drop':
        req.socket.destroy();
        return;
      case 'slowdown':
      case 'error500': {
        const [code, status] = fault === 'slowdown' ? ['SlowDown', 503] : ['InternalError', 500];
        req.resume();
        req.on('end', () => {
          res.writeHead(status, { 'content-type': 'application/xml' });
          res.end(s3Error(code));
        });
        return;
      }
      case 'stall': {
        req.resume();
        const t = setTimeout(() => {
          this.held.delete(t);
          req.socket.destroy();
        }, this.plan.stallMs ?? 60_000);
        this.held.add(t);
        req.socket.on('close', () => {
          clearTimeout(t);
          this.held.delete(t);
        });
        return;
      }
      default:
        this.forward(req, res, fault);
    }
  }

  private forward(req: http.IncomingMessage, res: http.ServerResponse, fault: 'lose-reply' | 'cut' | undefined): void {
    const up = http.request({
      host: this.upstream.hostname,
      port: this.upstream.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
    });
    up.on('error', () => {
      if (!res.headersSent) {
        res.writeHead(502);
        res.end();
      } else res.destroy();
    });
    up.on('response', (ur) => {
      if (fault === 'lose-reply') {
        ur.resume();
        ur.on('end', () => req.socket.destroy());
        return;
      }
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.on('data', (c: Buffer) => (this.bytesDown += c.length));
      ur.pipe(res);
    });
    if (fault === 'cut') {
      const total = Number(req.headers['content-length'] ?? 0);
      let sent = 0;
      req.on('data', (c: Buffer) => {
        if (sent >= total / 2) return;
        up.write(c);
        sent += c.length;
        if (sent >= total / 2) {
          up.destroy();
          req.socket.destroy();
        }
      });
      req.on('end', () => {
        up.destroy();
        req.socket.destroy();
      });
      return;
    }
    req.on('data', (c: Buffer) => (this.bytesUp += c.length));
    req.pipe(up);
  }
}
