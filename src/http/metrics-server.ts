/**
 * The separate metrics listener (`metrics_listen`): a bare HTTP server that
 * answers `GET /metrics` (Prometheus text) and nothing else, like Synapse's
 * `type: metrics` listener. With it configured, the main listener has no
 * `/metrics` at all, so the API port can face the internet while the
 * figures stay on a private address.
 */
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Registry } from "prom-client";
import type { Logger } from "../logging/logger.js";

export interface MetricsServer {
  /** Starts listening; resolves to the base URL. */
  start(host: string, port: number): Promise<string>;
  /** Stops listening and closes its connections. Idempotent. */
  stop(): Promise<void>;
}

export function createMetricsServer(metrics: Registry, logger: Logger): MetricsServer {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? "/").split("?", 1)[0];
    if (path !== "/metrics" || (request.method !== "GET" && request.method !== "HEAD")) {
      response.writeHead(404, { "content-type": "text/plain" }).end("Not found\n");
      return;
    }
    metrics.metrics().then(
      (text) => response.writeHead(200, { "content-type": metrics.contentType }).end(text),
      (error: unknown) => {
        logger.error({ err: error }, "collecting metrics failed");
        response.writeHead(500, { "content-type": "text/plain" }).end("Error\n");
      },
    );
  });
  return {
    async start(host, port) {
      server.listen(port, host);
      await once(server, "listening");
      const address = server.address() as AddressInfo;
      const shown = address.family === "IPv6" ? `[${address.address}]` : address.address;
      return `http://${shown}:${address.port}`;
    },
    async stop() {
      if (!server.listening) return;
      const closed = once(server, "close");
      server.close();
      server.closeAllConnections();
      await closed;
    },
  };
}
