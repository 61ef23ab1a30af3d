/**
 * `lkcd list --group`: the saved dumps by panic signature (the same panic
 * at the same call site), one line each with how many, the first and the
 * last, as crash-reporting tools group duplicate crashes.
 */
import type { DumpRecord } from '../src/store/index.js';

export interface SignatureGroupRow {
  signature: string;
  signature_text: string;
  count: number;
  dumps: number[];
  first: { n: number; time_sec: number };
  last: { n: number; time_sec: number };
}

/** Groups in the order of their first dump; within a group, dumps by time, then N. */
export function signatureGroups(dumps: readonly DumpRecord[]): SignatureGroupRow[] {
  const by = new Map<string, DumpRecord[]>();
  for (const d of dumps) {
    const g = by.get(d.signature);
    if (g) g.push(d); else by.set(d.signature, [d]);
  }
  const rows = [...by.values()].map((g): SignatureGroupRow => {
    const sorted = [...g].sort((a, b) => a.time_sec - b.time_sec || a.n - b.n);
    const f = sorted[0];
    const l = sorted[sorted.length - 1];
    return {
      signature: f.signature, signature_text: f.signature_text, count: g.length, dumps: sorted.map((d) => d.n),
      first: { n: f.n, time_sec: f.time_sec }, last: { n: l.n, time_sec: l.time_sec },
    };
  });
  return rows.sort((a, b) => a.first.time_sec - b.first.time_sec || a.first.n - b.first.n);
}

const utc = (sec: number): string => new Date(sec * 1000).toISOString().replace('T', ' ').slice(0, 19);

export function groupsText(rows: readonly SignatureGroupRow[], dumpdir: string): string {
  if (rows.length === 0) return `no dumps in ${dumpdir}\n`;
  const out = ['SIGNATURE         COUNT  FIRST (N, UTC)               LAST (N, UTC)                PANIC'];
  for (const r of rows) {
    const at = (x: { n: number; time_sec: number }): string => `${String(x.n).padStart(3)}  ${utc(x.time_sec)}`.padEnd(27);
    out.push(`${r.signature.padEnd(16)}  ${String(r.count).padStart(5)}  ${at(r.first)}  ${at(r.last)}  ${r.signature_text}`);
  }
  return out.join('\n') + '\n';
}
