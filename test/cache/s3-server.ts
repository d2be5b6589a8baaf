/**
 * A real S3-compatible HTTP server for the S3 remote tests: moto's standalone server
 * (`moto_server`, PyPI moto[s3] + flask, installed into .venv-s3server by scripts/setup.sh --test),
 * started as its own process on a free port with authentication on (an IAM user made for the
 * tests; every request's SigV4 signature is checked), with an SDK client for the tests to look inside.
 */
import { spawn, type ChildProcess } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { S3Client } from "@aws-sdk/client-s3";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Environment of the CLI besides the credentials: nothing from the machine's own AWS set-up. */
export const AWS_BASE_ENV = {
  AWS_REGION: "us-east-1",
  AWS_PROFILE: "",
  AWS_CONFIG_FILE: "/nonexistent",
  AWS_SHARED_CREDENTIALS_FILE: "/nonexistent",
  AWS_EC2_METADATA_DISABLED: "true",
  AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true",
};

export interface S3Server {
  endpoint: string;
  /** An access key of an IAM user of the server allowed s3:*: moto checks every request's SigV4 signature against it. */
  accessKeyId: string;
  secretAccessKey: string;
  client: S3Client;
  /** The server's request log so far (one line per HTTP request: "HEAD /bucket/key HTTP/1.1" 200). */
  log(): string;
  stop(): Promise<void>;
}

export async function startS3Server(): Promise<S3Server> {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const bin = process.env.PIPELINE_TEST_MOTO_SERVER ?? path.join(REPO, ".venv-s3server/bin/moto_server");
  if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: run \`bash scripts/setup.sh --test\` (it installs python/requirements-s3server.lock into .venv-s3server)`);
  // authentication on (requests must be signed by a known key) after the 3 IAM calls below
  const env = { ...process.env, PYTHONUNBUFFERED: "1", INITIAL_NO_AUTH_ACTION_COUNT: "3" };
  const child: ChildProcess = spawn(bin, ["-H", "127.0.0.1", "-p", "0"], { stdio: ["ignore", "pipe", "pipe"], env });
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
  const { accessKeyId, secretAccessKey } = await makeUser(endpoint);
  const client = new S3Client({
    endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId, secretAccessKey },
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
  return {
    endpoint,
    accessKeyId,
    secretAccessKey,
    client,
    // biome-ignore lint/suspicious/noControlCharactersInRegex: ANSI colour codes start with ESC
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

/** IAM (query API) on moto: a user with an access key and an inline policy allowing s3:*. */
async function makeUser(endpoint: string): Promise<{ accessKeyId: string; secretAccessKey: string }> {
  const iam = async (params: Record<string, string>): Promise<string> => {
    const r = await fetch(`${endpoint}/`, {
      method: "POST",
      headers: {
        "Content-Type": "application/x-www-form-urlencoded",
        // unsigned (one of the INITIAL_NO_AUTH_ACTION_COUNT calls); the scope tells moto the service
        Authorization: "AWS4-HMAC-SHA256 Credential=bootstrap/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
      },
      body: new URLSearchParams({ Version: "2010-05-08", ...params }).toString(),
    });
    const text = await r.text();
    if (!r.ok) throw new Error(`moto IAM ${params.Action}: HTTP ${r.status}: ${text}`);
    return text;
  };
  await iam({ Action: "CreateUser", UserName: "ci" });
  const key = await iam({ Action: "CreateAccessKey", UserName: "ci" });
  const policy = { Version: "2012-10-17", Statement: [{ Effect: "Allow", Action: "s3:*", Resource: "*" }] };
  await iam({ Action: "PutUserPolicy", UserName: "ci", PolicyName: "s3", PolicyDocument: JSON.stringify(policy) });
  const pick = (tag: string) => new RegExp(`<${tag}>([^<]+)</${tag}>`).exec(key)?.[1] ?? "";
  return { accessKeyId: pick("AccessKeyId"), secretAccessKey: pick("SecretAccessKey") };
}
