/**
 * A real S3-compatible HTTP server for the S3 remote tests: moto's standalone server
 * (`moto_server`, PyPI moto[s3] + flask, installed into .venv-s3server by scripts/setup.sh --test),
 * started as its own process on a free port, with an SDK client for the tests to look inside.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { S3Client } from "@aws-sdk/client-s3";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Test credentials: the tests check that neither ever appears in the tool's output. */
export const AWS_ENV = {
  AWS_ACCESS_KEY_ID: "AKIATESTKEYID7Q3X9Z",
  AWS_SECRET_ACCESS_KEY: "test-secret-Zx81kQ-never-printed",
  AWS_REGION: "us-east-1",
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
};

export interface S3Server {
  endpoint: string;
  client: S3Client;
  /** The server's request log so far (one line per HTTP request: "HEAD /bucket/key HTTP/1.1" 200). */
  log(): string;
  stop(): Promise<void>;
}

export async function startS3Server(): Promise<S3Server> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const bin = process.env.PIPELINE_TEST_MOTO_SERVER ?? path.join(REPO, ".venv-s3server/bin/moto_server");
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: run \`bash scripts/setup.sh --test\` (it installs python/requirements-s3server.lock into .venv-s3server)`);
  const child: ChildProcess = spawn(bin, ["-H", "127.0.0.1", "-p", "0"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PYTHONUNBUFFERED: "1" } });
  let log = "";
  const endpoint = await new Promise<string>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`moto_server did not start in 30 s:\n${log}`)), 30_000);
    const onData = (d: Buffer) => {
      log += d.toString();
      const m = /Running on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (m) {
        clearTimeout(t);
        resolve(m[1]!);
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.on("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`moto_server exited (${code}):\n${log}`));
    });
  });
  const client = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: AWS_ENV.AWS_ACCESS_KEY_ID, secretAccessKey: AWS_ENV.AWS_SECRET_ACCESS_KEY },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  return {
    endpoint,
    client,
    log: () => log.replace(/\x1b\[[0-9;]*m/g, ""),
    async stop() {
      client.destroy();
      if (child.exitCode === null) {
        const gone = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await gone;
      }
    },
  };
}
