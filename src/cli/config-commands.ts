/** `mxcd generate-config` and `mxcd config check`. */
import { writeFileSync } from "node:fs";
import { loadConfigFile } from "../config/load-config.js";
import { sampleConfig } from "../config/sample-config.js";

export function generateConfigCommand(options: {
  serverName: string;
  port: string;
  output?: string;
}): void {
  const text = sampleConfig({ serverName: options.serverName, port: Number(options.port) });
  if (!options.output) {
    process.stdout.write(text);
    return;
  }
  // "wx": never overwrite an existing config (it holds the registration secret).
  writeFileSync(options.output, text, { flag: "wx", mode: 0o600 });
  console.error(`wrote ${options.output}`);
}

export function configCheckCommand(file: string): void {
  const config = loadConfigFile(file);
  console.log(
    `${file}: OK (server_name ${config.server_name}, database ${config.database.engine})`,
  );
}
