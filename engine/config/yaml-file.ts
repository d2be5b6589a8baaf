/**
 * A parsed YAML file that can point at the line:col of any key path, so every error about
 * pipeline.yaml / dvc.yaml / params names `file:LINE:COL` and the key path.
 */
import fs from "node:fs";
import { LineCounter, parseDocument, isMap, isPair, isScalar, isSeq, type Document, type Node } from "yaml";
import { InputError } from "../errors.ts";

export type KeyPath = (string | number)[];

/** Alias expansions a file may use before it is refused as an alias bomb (the yaml library's guard). */
const MAX_ALIAS_COUNT = 1000;

/** BigInts (from `intAsBigInt`) back to numbers where a number holds them exactly. */
function exactInts(v: unknown): unknown {
  if (typeof v === "bigint") return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
  if (Array.isArray(v)) return v.map(exactInts);
  if (v !== null && typeof v === "object" && Object.getPrototypeOf(v) === Object.prototype) {
    for (const k of Object.keys(v)) (v as Record<string, unknown>)[k] = exactInts((v as Record<string, unknown>)[k]);
  }
  return v;
}

/** A parsed YAML file that can point at the line:col of any key path. */
export class YamlFile {
  private constructor(
    readonly display: string,
    readonly doc: Document.Parsed,
    readonly lines: LineCounter,
    readonly value: unknown,
  ) {}

  /** Parse; malformed YAML -> InputError `display:LINE:COL: message`. */
  static parse(text: string, display: string): YamlFile {
    const lines = new LineCounter();
    // integers beyond 2^53 stay exact (BigInt); every other integer is a plain number (exactInts)
    // `<<: *anchor` merge keys are applied, as DVC's YAML loader (ruamel) does
    const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, intAsBigInt: true, merge: true });
    if (doc.errors.length > 0) {
      const msgs = doc.errors.slice(0, 3).map((e) => {
        const p = lines.linePos(e.pos[0]);
        const first = e.message.split("\n")[0];
        return `${display}:${p.line}:${p.col}: ${first}`;
      });
      const line = text.split("\n")[lines.linePos(doc.errors[0]!.pos[0]).line - 1] ?? "";
      const hint = line.includes("${") && /[[{]/.test(line.replace(/\$\{[^}]*\}/g, ""))
        ? "; a ${...} inside [ ] or { } must be quoted: [\"${out}/x\"], or use a block list (- ${out}/x)"
        : "";
      throw new InputError(`${msgs.join("\n")}\n(fix the YAML syntax of ${display}${hint})`);
    }
    let value: unknown;
    try {
      value = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
    } catch (e) {
      // the yaml library's guard against alias bombs ("billion laughs"): bad input, not a bug
      if (!(e instanceof ReferenceError) || !/alias/i.test(e.message)) throw e;
      throw new InputError(
        `${display}: too many YAML alias expansions (over ${MAX_ALIAS_COUNT}: an alias bomb, nested *aliases that expand exponentially); write the values out instead of nesting aliases`,
      );
    }
    return new YamlFile(display, doc, lines, exactInts(value));
  }

  static read(file: string, display: string): YamlFile {
    let text: string;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (e) {
      throw new InputError(`cannot read ${display}: ${(e as Error).message}`);
    }
    return YamlFile.parse(text, display);
  }

  /**
   * Dotted paths of whole-number values written as floats (`42.0`, `1e3`): YAML gives JS numbers,
   * but DVC (Python) writes them `42.0` / `1000.0` when interpolating.
   */
  floatPaths(): Set<string> {
    const out = new Set<string>();
    const walk = (node: unknown, at: string[]) => {
      if (isMap(node)) {
        for (const p of node.items) if (isPair(p) && isScalar(p.key)) walk(p.value, [...at, String(p.key.value)]);
      } else if (isSeq(node)) {
        for (const [i, n] of node.items.entries()) walk(n, [...at, String(i)]);
      } else if (isScalar(node) && typeof node.value === "number" && Number.isInteger(node.value)) {
        const n = node as { minFractionDigits?: number; format?: string };
        if ((n.minFractionDigits ?? 0) > 0 || n.format === "EXP") out.add(at.join("."));
      }
    };
    walk(this.doc.contents, []);
    return out;
  }

  /** `display:LINE:COL` of the deepest node along the path (the key itself when `atKey`). */
  pos(keyPath: KeyPath, atKey = false): string {
    let node: unknown = this.doc.contents;
    let best: { range?: [number, number, number] | null } | undefined = node as Node;
    for (const seg of keyPath) {
      if (isMap(node)) {
        const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        if (atKey && seg === keyPath[keyPath.length - 1]) {
          best = pair.key as Node;
          node = undefined;
          break;
        }
        node = pair.value;
        best = (pair.value as Node | null) ?? (pair.key as Node);
      } else if (isSeq(node) && typeof seg === "number") {
        node = node.items[seg];
        if (!node) break;
        best = node as Node;
      } else {
        break;
      }
    }
    const off = best?.range?.[0];
    if (off === undefined) return this.display;
    const p = this.lines.linePos(off);
    return `${this.display}:${p.line}:${p.col}`;
  }
}

export function formatKeyPath(p: KeyPath): string {
  let s = "";
  for (const seg of p) s += typeof seg === "number" ? `[${seg}]` : s === "" ? seg : `.${seg}`;
  return s || "(top level)";
}

