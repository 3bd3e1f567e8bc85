/**
 * The admin HTTP server, on its own port (never on a proxy listener): `GET /metrics` (Prometheus text),
 * `GET /healthz` (200 while the process runs), `GET /readyz` (200 while accepting, 503 while draining).
 *
 * It stays cheap under scraping and abuse: the exposition is rendered at most once per
 * {@link ADMIN_LIMITS.metricsCacheMs} (every scrape in that window, and every scrape waiting for a render
 * in progress, gets the same bytes), a connection carries at most
 * {@link ADMIN_LIMITS.maxRequestsPerConnection} requests (pipelined or not) before it is closed, at most
 * {@link ADMIN_LIMITS.maxConnections} connections are open at once, and slow or idle clients are timed
 * out. Rendering walks every metric (and, with workers, asks every worker): without the cache, 1,000
 * pipelined `/metrics` requests on one connection cost 1,000 renders.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** The admin port's bounds. */
export const ADMIN_LIMITS = {
  /** A rendered exposition is served again for this long (ms) before the next render. */
  metricsCacheMs: 1000,
  /** Requests on one connection; the last gets `Connection: close`, later ones 503 and the socket ends. */
  maxRequestsPerConnection: 100,
  /** Admin connections open at once; more are closed at accept. */
  maxConnections: 32,
  /** Time (ms) for a request's head to arrive. */
  headersTimeoutMs: 5_000,
  /** Time (ms) for a whole request to arrive. */
  requestTimeoutMs: 10_000,
  /** Idle time (ms) of a keep-alive connection between requests. */
  keepAliveTimeoutMs: 5_000,
  /** Largest request head (bytes). */
  maxHeaderBytes: 8_192,
} as const;

/** Renders the exposition: the edge's registry, or the workers' metrics aggregated. */
export interface MetricsSource {
  /** The Prometheus text of every metric. */
  render(): Promise<string>;
  /** Its content type. */
  readonly contentType: string;
}

/** Serves metrics and health endpoints. */
export class AdminServer {
  private readonly server: http.Server;
  private cached: { body: Buffer; at: number } | undefined;
  private rendering: Promise<Buffer> | undefined;
  private renders = 0;
  /** Requests seen per connection. */
  private readonly requestsOn = new WeakMap<object, number>();

  /**
   * @param metrics What `/metrics` serves.
   * @param ready Whether the edge accepts connections (false while starting or draining).
   */
  constructor(
    private readonly metrics: MetricsSource,
    private readonly ready: () => boolean,
  ) {
    this.server = http.createServer({ maxHeaderSize: ADMIN_LIMITS.maxHeaderBytes }, (req, res) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    this.server.maxConnections = ADMIN_LIMITS.maxConnections;
    this.server.headersTimeout = ADMIN_LIMITS.headersTimeoutMs;
    this.server.requestTimeout = ADMIN_LIMITS.requestTimeoutMs;
    this.server.keepAliveTimeout = ADMIN_LIMITS.keepAliveTimeoutMs;
    this.server.on('clientError', (_err, socket) => socket.destroy());
  }

  /** Renders of the exposition so far (each one walks every metric): for tests and status pages. */
  get renderCount(): number {
    return this.renders;
  }

  /** Listens on `host:port` (port 0 picks a free one) and resolves with the bound address. */
  listen(host: string, port: number): Promise<{ host: string; port: number }> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const addr = this.server.address() as AddressInfo;
        resolve({ host: addr.address, port: addr.port });
      });
    });
  }

  /** Stops listening and closes open connections. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** The exposition: the cached one while fresh, else the render in progress, else a new render. */
  private exposition(): Promise<Buffer> {
    const now = performance.now();
    if (this.cached && now - this.cached.at < ADMIN_LIMITS.metricsCacheMs) {
      return Promise.resolve(this.cached.body);
    }
    if (!this.rendering) {
      this.renders++;
      const started = performance.now();
      this.rendering = this.metrics
        .render()
        .then((text) => {
          const body = Buffer.from(text);
          // Fresh from when the render began: a slow render is not served for longer than the window.
          this.cached = { body, at: started };
          return body;
        })
        .finally(() => {
          this.rendering = undefined;
        });
    }
    return this.rendering;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    // Node's own maxRequestsPerSocket answers every request past the limit with a 503 and keeps the
    // connection until its keep-alive timeout: 1,000 pipelined requests still get 1,000 answers. Here
    // the last allowed request is answered with `Connection: close` (Node ends the socket once it is
    // written, and stops reading), and requests already parsed past it are left unanswered: no work.
    const served = (this.requestsOn.get(req.socket) ?? 0) + 1;
    this.requestsOn.set(req.socket, served);
    if (served > ADMIN_LIMITS.maxRequestsPerConnection) return;
    if (served === ADMIN_LIMITS.maxRequestsPerConnection) {
      res.shouldKeepAlive = false;
      req.socket.pause();
    }
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' });
      res.end('method not allowed\n');
      return;
    }
    switch (path) {
      case '/metrics': {
        const body = await this.exposition();
        res.writeHead(200, { 'content-type': this.metrics.contentType, 'content-length': body.length });
        res.end(req.method === 'HEAD' ? undefined : body);
        return;
      }
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok\n');
        return;
      case '/readyz': {
        const ready = this.ready();
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' });
        res.end(ready ? 'ready\n' : 'not ready (starting or draining)\n');
        return;
      }
      default:
        res.writeHead(404, { 'content-type': 'text/plain' });
        res.end('not found: /metrics, /healthz, /readyz\n');
    }
  }
}

/** A {@link MetricsSource} over one prom-client registry. */
export function registrySource(registry: {
  metrics(): Promise<string>;
  readonly contentType: string;
}): MetricsSource {
  return {
    render: () => registry.metrics(),
    get contentType() {
      return registry.contentType;
    },
  };
}
