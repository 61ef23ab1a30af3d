/**
 * The exit-status table (src/cli/exit.ts) against the values the project
 * documents: sysexits.h for errors (EX_USAGE 64 ... EX_TEMPFAIL 75) and the
 * degraded results 3 to 6 of issue 8. Every error code has a status and a
 * one-line report; the README's table lists exactly the same statuses.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DUMP_ERROR_CODES, DumpError, type DumpErrorCode } from '../../../src/codec/index.js';
import {
  cliExitHelp, COMMAND_EXIT_STATUSES, EXIT_CODES, EXIT_STATUS_MEANINGS, exitCodeOf, exitStatusHelp, formatError,
} from '../../../src/cli/exit.js';
import { REPO } from '../../helpers/cli.js';

/** /usr/include/sysexits.h, and the degraded results as issue 8 defines them. */
const DOCUMENTED: Record<DumpErrorCode, number> = {
  USAGE: 64, CORRUPT: 65, TRUNCATED: 65, FAULT: 65, NOINPUT: 66, UNSUPPORTED: 69, INTERNAL: 70, IO: 74, BUSY: 75,
  DUMP_TRUNCATED: 3, DUMP_DAMAGED: 4, DEVICE_IO: 5, DUMP_LOST: 6, NOT_ARMED: 7,
};
/** kexec-tools' `kexec -S`: 1 when a kernel of the type is loaded (a status with no error code). */
const KEXEC_LOADED = 1;

describe('the exit-status table', () => {
  it('every DumpErrorCode has exactly its documented status, and the table has no other code', () => {
    expect([...DUMP_ERROR_CODES].sort()).toEqual(Object.keys(DOCUMENTED).sort());
    expect(Object.keys(EXIT_CODES).sort()).toEqual([...DUMP_ERROR_CODES].sort());
    for (const code of DUMP_ERROR_CODES) expect(EXIT_CODES[code], code).toBe(DOCUMENTED[code]);
  });

  it.each([...DUMP_ERROR_CODES])('%s: formatError gives one line with the message and place; exitCodeOf its status', (code) => {
    const err = new DumpError(code, `${code} happened in /tmp/odd\nname`, { struct: 'dump_page', field: 'dp_size', offset: 0x10018 });
    const line = formatError(err);
    expect(line).toBe(`${code} happened in /tmp/odd\\nname (dump_page.dp_size at offset 0x10018)`);
    expect(line).not.toMatch(/[\r\n]/);
    expect(exitCodeOf(err)).toBe(DOCUMENTED[code]);
  });

  it('every status has one meaning, in ascending order, and the meanings cover exactly the table and success', () => {
    const statuses = EXIT_STATUS_MEANINGS.map((r) => r.status);
    expect(statuses).toEqual([...new Set([0, KEXEC_LOADED, ...Object.values(DOCUMENTED)])].sort((a, b) => a - b));
    for (const r of EXIT_STATUS_MEANINGS) expect(r.meaning.length).toBeLessThanOrEqual(70);
  });

  it('each command\'s epilogue lists the common statuses plus its own, one row per status', () => {
    const rows = (text: string): number[] => text.split('\n').map((l) => /^\s+(\d+)\s{2}/.exec(l)?.[1]).filter((x) => x !== undefined).map(Number);
    expect(rows(cliExitHelp('lkcd', 'verify'))).toEqual([0, 3, 4, 64, 65, 66, 69, 70, 74, 75]);
    expect(rows(cliExitHelp('lkcd', 'config'))).toEqual([0, 3, 5, 64, 65, 66, 70, 74, 75]);
    expect(rows(cliExitHelp('machine', 'panic'))).toEqual([0, 6, 64, 65, 66, 70, 74, 75]);
    expect(rows(cliExitHelp('kexec'))).toEqual([0, 1, 64, 65, 66, 70, 74, 75]);
    expect(rows(cliExitHelp('lkcd', 'status'))).toEqual([0, 7, 64, 65, 66, 70, 74, 75]);
    for (const cli of Object.keys(COMMAND_EXIT_STATUSES) as Array<keyof typeof COMMAND_EXIT_STATUSES>) {
      const all = rows(cliExitHelp(cli));
      for (const s of Object.values(COMMAND_EXIT_STATUSES[cli]).flat()) expect(all, `${cli} lists ${s}`).toContain(s);
    }
    expect(() => exitStatusHelp([42])).toThrow(/no meaning for exit status 42/);
  });

  it('the README documents the same table: each status, its error codes and meaning', () => {
    const readme = fs.readFileSync(path.join(REPO, 'README.md'), 'utf8');
    const section = readme.split('### Exit status')[1]?.split('\n### ')[0];
    expect(section, 'README has an "### Exit status" section').toBeDefined();
    const rows = section!.split('\n').filter((l) => /^\| \d+ \|/.test(l)).map((l) => l.split('|').map((c) => c.trim()));
    expect(rows.map((r) => Number(r[1]))).toEqual(EXIT_STATUS_MEANINGS.map((r) => r.status));
    for (const code of DUMP_ERROR_CODES) {
      const row = rows.find((r) => Number(r[1]) === DOCUMENTED[code])!;
      expect(row[2], `README row ${DOCUMENTED[code]} names ${code}`).toContain(`\`${code}\``);
    }
  });
});
