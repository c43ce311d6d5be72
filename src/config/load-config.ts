/**
 * Parses, validates and freezes the config once. Every problem is reported
 * with its dotted key (`listen.port: ...`) so `mxcd config check` and a
 * refused `mxcd serve` say exactly what to fix.
 */
import { readFileSync } from "node:fs";
import { parse as parseYaml, YAMLParseError } from "yaml";
import type { z } from "zod";
import { type Config, configSchema } from "./config-schema.js";

/** A config that cannot be used; `problems` are `dotted.key: message` lines. */
export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(source: string, problems: readonly string[]) {
    super(`invalid config ${source}:\n  ${problems.join("\n  ")}`);
    this.name = "ConfigError";
    this.problems = problems;
  }
}

/** Reads and validates a YAML config file. */
export function loadConfigFile(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(path, [`cannot read file: ${(error as Error).message}`]);
  }
  return parseConfigText(text, path);
}

/** Validates YAML text; `source` names it in errors. */
export function parseConfigText(text: string, source = "<text>"): Config {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (error) {
    const where = error instanceof YAMLParseError ? ` (line ${error.linePos?.[0]?.line})` : "";
    throw new ConfigError(source, [`not valid YAML${where}: ${(error as Error).message}`]);
  }
  return validateConfig(raw ?? {}, source);
}

/**
 * Options mxcd used to accept and no longer does, with what to do instead:
 * a config that still has one is refused with this text, not a bare
 * "unknown option".
 */
const REMOVED_OPTIONS: Readonly<Record<string, string>> = {
  public_baseurl:
    "removed: mxcd builds no client-facing URLs (media are mxc:// URIs, and the reverse proxy owns the public address); delete this line",
};

/** Validates an already-parsed config object. */
export function validateConfig(raw: unknown, source = "<object>"): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(source, result.error.issues.flatMap(describeIssue));
  return deepFreeze(result.data);
}

function describeIssue(issue: z.core.$ZodIssue): string[] {
  const key = issue.path.map(String).join(".");
  if (issue.code === "unrecognized_keys") {
    return issue.keys.map((k) => {
      if (!key && REMOVED_OPTIONS[k]) return `${k}: ${REMOVED_OPTIONS[k]}`;
      return `${key ? `${key}.` : ""}${k}: unknown option`;
    });
  }
  if (issue.code === "invalid_type" && issue.input === undefined) {
    return [`${key}: is required`];
  }
  return [`${key || "(top level)"}: ${issue.message}`];
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
