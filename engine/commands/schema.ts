/** `tsx run.ts schema`: the JSON Schema of pipeline.yaml (committed as pipeline.schema.json). */
import { pipelineJsonSchema } from "../schema.ts";

export function schemaText(): string {
  return JSON.stringify(pipelineJsonSchema(), null, 2) + "\n";
}

export async function schema(): Promise<number> {
  process.stdout.write(schemaText());
  return 0;
}
