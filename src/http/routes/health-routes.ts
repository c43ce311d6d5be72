/**
 * `GET /health` for load balancers and `GET /metrics` for Prometheus. Pass
 * no registry when metrics have a listener of their own (`metrics_listen`):
 * then the main listener has no `/metrics`.
 */
import type { FastifyInstance } from "fastify";
import type { Registry } from "prom-client";

export function registerHealthRoutes(app: FastifyInstance, metrics: Registry | undefined): void {
  app.get("/health", async (_request, reply) => reply.type("text/plain").send("OK"));
  if (!metrics) return;

  app.get("/metrics", async (_request, reply) =>
    reply.type(metrics.contentType).send(await metrics.metrics()),
  );
}
