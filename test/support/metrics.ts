/** Reading single values from a server's Prometheus `/metrics` text. */

/**
 * The value of the sample `name{labels}` (labels in the order the server
 * prints them, e.g. `trigger="request"`), or 0 when it is absent.
 */
export async function metric(baseUrl: string, name: string, labels = ""): Promise<number> {
  const text = await (await fetch(new URL("/metrics", baseUrl))).text();
  const sample = labels === "" ? name : `${name}{${labels}}`;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${sample} `)) return Number(line.slice(sample.length + 1));
  }
  return 0;
}
