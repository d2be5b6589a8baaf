/**
 * S3 failures as one line that says what to check, with every credential scrubbed out (the SDK's
 * messages do not carry secrets, but a server's may echo the access key id; we never print them).
 */
import { InputError } from "../errors.ts";

export interface S3ErrorContext {
  url: string;
  bucket: string;
  endpoint: string;
  /** What was being done (an object key, "credentials", ...). */
  what: string;
  profile?: string;
  secrets: string[];
}

export function scrub(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) if (s.length >= 4) out = out.split(s).join("***");
  return out;
}

const ACCESS = new Set(["AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "AllAccessDisabled", "Forbidden"]);
const NETWORK = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "ECONNRESET", "ETIMEDOUT", "EHOSTUNREACH", "ENETUNREACH", "CERT_HAS_EXPIRED", "DEPTH_ZERO_SELF_SIGNED_CERT", "UNABLE_TO_VERIFY_LEAF_SIGNATURE"]);

export function explainS3Error(e: unknown, c: S3ErrorContext): Error {
  const err = e as { name?: string; code?: string; Code?: string; message?: string; $metadata?: { httpStatusCode?: number }; errors?: { code?: string }[] };
  const name = err.Code ?? err.name ?? "Error";
  const status = err.$metadata?.httpStatusCode;
  const creds = `AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY${c.profile ? `, profile ${c.profile}` : ", AWS_PROFILE or s3.profile in pipeline.config.yaml"}`;
  const code = err.code ?? err.errors?.find((x) => x.code)?.code;
  let line: string;
  let input = true;
  if (name === "CredentialsProviderError" || c.what === "credentials") {
    line = `no usable AWS credentials (${err.message ?? name}): set ${creds}`;
  } else if (ACCESS.has(name) || status === 403) {
    // a HEAD's answer has no body: the SDK knows only the status then
    line = `access denied (${name === "Unknown" || name === "Forbidden" || name === "403" ? `HTTP ${status ?? 403}` : name}) on ${c.what}: check ${creds} and the bucket's policy`;
  } else if (name === "NoSuchBucket") {
    line = `bucket ${c.bucket} does not exist at ${c.endpoint} (check the name and s3.endpoint_url)`;
  } else if ((code && NETWORK.has(code)) || name === "TimeoutError") {
    line = `cannot reach ${c.endpoint} (${code ?? name}): check s3.endpoint_url / AWS_ENDPOINT_URL and the network`;
  } else {
    input = false;
    line = `${c.what}: ${name}${status ? ` (HTTP ${status})` : ""}${err.message && err.message !== name ? `: ${err.message}` : ""}`;
  }
  const msg = scrub(`remote ${c.url}: ${line}`, c.secrets);
  return input ? new InputError(msg) : new Error(msg);
}
