/** `GET /health` for load balancers and `GET /metrics` for Prometheus. */
import type { FastifyInstance } from "fastify";
import type { Registry } from "prom-client";

export function registerHealthRoutes(app: FastifyInstance, metrics: Registry): void {
  app.get("/health", async (_request, reply) => reply.type("text/plain").send("OK"));

  app.get("/metrics", async (_request, reply) =>
    reply.type(metrics.contentType).send(await metrics.metrics()),
  );
}
