#!/usr/bin/env node
import '../src/cli/heap.js'; // first: bounds V8's young generation (see heap.ts)
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { DegradedResult, DumpError, UsageError } from '../src/codec/index.js';
import { checkOutputPath, MachineRoot, resolveRoot, writeOutputFile } from '../src/machine/index.js';
import { usageFailure, versionText } from '../src/cli/usage.js';

import { runCli } from '../src/cli/run.js';
import { cliExitHelp } from '../src/cli/exit.js';
import fs from 'node:fs';
import path from 'node:path';
import { hex, parseSize } from '../src/codec/index.js';
import { exportDumpAsElf, kernelViewOf } from '../src/dump/index.js';
import { DumpIndex, INDEX_FILE, PstoreIndex } from '../src/store/index.js';
import { formatDmesg } from '../src/kernel/index.js';
import { progressBar } from '../src/cli/progress.js';
import { holdMachine } from '../src/cli/hold.js';
import { lkcdConfig } from './config.js';
import {
  degradedOf, dumpDirNumbers, lkcdSave, recoverEmptyIndex, reindexDumpDir,
} from './save.js';
import { dumpDirFor, formatHeaders, hexDump, openIndexedDump, parseDumpNumber, readPhysical, showText, sysconfigFor } from './query.js';
import { lkcdProtected } from './sysconfig.js';
import { analysisJson, analysisText, readDumpFacts } from './analysis.js';
import { acquireSaveLock } from './dumpdir.js';
import { vmlinuxStatus } from './debuginfo.js';
import { lkcdPstoreSave, PSTORE_ARCHIVE_DIR, pstoreListText, reindexPstore } from './pstore.js';
import { verifySavedDump } from './verify.js';
import { lkcdImport } from './import.js';
import { deviceDumpList, deviceDumpText, extractDeviceDump } from './devices.js';
import { showSysconfig, showSysconfigText, sysconfigWarnings } from './config_show.js';
import { buildDumpMap, dumpMapSvg, dumpMapText } from './map.js';
import { applyRetention, lkcdRemove } from './retention.js';
import { groupsText, signatureGroups } from './groups.js';
import { estimateText, lkcdEstimate, parseLevel } from './estimate.js';
import { heldDumpWarning, runningRelease, lkcdStatus, lkcdStatusText } from './status.js';

/** The commands, for the did-you-mean of an unknown one. */
const COMMANDS = ['status', 'estimate', 'rm', 'map', 'config', 'save', 'import', 'list', 'show', 'dmesg', 'read', 'search', 'verify', 'export', 'devices', 'analyze', 'pstore', 'reindex'];

const json = (v: unknown): string => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? (x > BigInt(Number.MAX_SAFE_INTEGER) ? hex(x) : Number(x)) : x), 2) + '\n';
const out = (s: string): void => { process.stdout.write(s); };

function rootOf(argv: { root?: string }): MachineRoot {
  return new MachineRoot(resolveRoot(argv.root));
}

await runCli('lkcd', async () => {
  await yargs(hideBin(process.argv))
    .scriptName('lkcd')
    .usage('$0 <command> [options]\n\nlkcdutils for the simulated machine: configure dumping, save and read dumps.')
    .option('root', { type: 'string', describe: 'machine root directory (default: $LKCD_ROOT, else var/ of the checkout)' })
    .option('debug', { type: 'boolean', describe: 'print stack traces on errors' })
    .command('status', 'whether a crash now would give an LKCD dump (armed) and why not; level, compression, device, the kexec kernel and its crashdump=, a dump held in memory or unsaved on the device (with the next step), DUMPDIR usage, and kdump, fadump and pstore on this machine; exits 7 when not armed', (y) => y.epilogue(cliExitHelp('lkcd', 'status')).option('json', { type: 'boolean', default: false }), (argv) => {
      const s = lkcdStatus(rootOf(argv));
      out(argv.json ? json(s) : lkcdStatusText(s));
      if (!s.armed) throw new DegradedResult('NOT_ARMED', `not armed: ${s.not_armed.join('; ')}`);
    })
    .command('estimate', 'what a panic now would dump, changing nothing (as kdumpctl estimate, dumpadm -e, makedumpfile --mem-usage): frames per page class (with makedumpfile\'s names) and pass from mem_map, zero frames, sampled compression per pass, the room stage 1 would have, and per dump level whether the dump would be complete and its size in memory and on the device', (y) => y.epilogue(cliExitHelp('lkcd', 'estimate'))
      .option('level', { type: 'string', describe: 'only this dump level: 1, 2, 4 or 8' })
      .option('json', { type: 'boolean', default: false }), (argv) => {
      const e = lkcdEstimate(rootOf(argv), parseLevel(argv.level));
      out(argv.json ? json(e) : estimateText(e));
    })
    .command('config', 'write out a dump held in memory to DUMPDEV (never over a dump lkcd save has not saved: with DUMP_SAVE=1 it is saved first), then arm the dump driver and preload kexec with crashdump=; exits 3 when the dump written is TRUNCATED, 5 when the device failed', (y) => y.epilogue(cliExitHelp('lkcd', 'config'))
      .option('force', { type: 'boolean', default: false, describe: 'write out even over a device dump lkcd save never saved' })
      .option('show', { type: 'boolean', default: false, describe: 'change nothing: print every effective setting of etc/sysconfig/dump and where it came from (file:line, or default)' })
      .option('json', { type: 'boolean', default: false, describe: 'with --show: as JSON' }),
    (argv) => {
      const root = rootOf(argv);
      if (argv.json && !argv.show) throw new UsageError('--json goes with --show');
      if (argv.show) {
        const shown = showSysconfig(root, runningRelease(root));
        for (const w of shown.warnings) process.stderr.write(`lkcd: warning: ${w}\n`);
        out(argv.json ? json(shown) : showSysconfigText(shown));
        return;
      }
      // Keys nothing reads are named before the work (a typo must not pass silently).
      for (const w of sysconfigWarnings(root)) process.stderr.write(`lkcd: warning: ${w}\n`);
      return holdMachine(root, 'lkcd', () => {
        const r = lkcdConfig(root, (l) => out(`${l}\n`), { force: argv.force });
        if (r.degraded) throw r.degraded;
      });
    })
    .command('save', 'copy the dump on DUMPDEV to DUMPDIR/N (dump.N, map.N, kerntypes.N, analysis.N, vmlinux.N, devices/), check it, index it, mark it saved (a dump marked saved is not saved again; one identical to a saved dump but not marked is saved as a new N, same_as the first); then, with DUMP_KEEP=K, remove the oldest dumps beyond the newest K; exits 3 for a TRUNCATED dump, 4 for a DAMAGED one', (y) => y.epilogue(cliExitHelp('lkcd', 'save')).option('json', { type: 'boolean', default: false }), (argv) => holdMachine(rootOf(argv), 'lkcd', () => {
      // The issue's trap: "no dump" while a dump waits in memory. Said when this save saved nothing new
      // (a save that fails reports only its error; one that saved a dump, say a device too small for the
      // held one, has shown what it did).
      const held = heldDumpWarning(rootOf(argv));
      const r = lkcdSave(rootOf(argv));
      if (held && !r.lines.some((l) => /^lkcd save: saved dump \d+ to /.test(l))) process.stderr.write(`lkcd: warning: ${held}\n`);
      // DUMP_KEEP: the oldest dumps beyond the newest N go once this one is safe in DUMPDIR.
      const conf = sysconfigFor(rootOf(argv));
      const removed = r.n !== null ? applyRetention(conf.DUMPDIR, conf.DUMP_KEEP) : [];
      if (argv.json) out(json({ n: r.n, lines: [...r.lines, ...removed], removed: removed.length, degraded: r.degraded ? r.degraded.message : null }));
      else for (const l of [...r.lines, ...removed]) out(`${l}\n`);
      if (r.degraded) throw r.degraded;
    }))
    .command('import <file>', 'copy a dump another tool wrote (LKCD from any writer, an ELF vmcore, makedumpfile\'s kdump-compressed file) into DUMPDIR/N as the next N, check it, index it; never the same file twice; exits 3 for a TRUNCATED dump, 4 for a DAMAGED one, 69 for a file of no known format', (y) => y.epilogue(cliExitHelp('lkcd', 'import')).positional('file', { type: 'string' })
      .option('map', { type: 'string', describe: 'the crashed kernel\'s System.map, kept as map.N: the log, tasks and mem_map are read through it (else through the dump\'s VMCOREINFO note, when it has one)' })
      .option('kerntypes', { type: 'string', describe: 'its Kerntypes, kept as kerntypes.N' }), (argv) => {
      const r = lkcdImport(rootOf(argv), argv.file!, { map: argv.map, kerntypes: argv.kerntypes });
      for (const l of r.lines) out(`${l}\n`);
      if (r.degraded) throw r.degraded;
    })
    .command('list', 'the saved dumps, each with its state, its panic signature and, when byte-identical to an earlier dump, which one (same_as); --group: one line per panic signature with the count, first and last; an index that lost its dumps is rebuilt from DUMPDIR/N first', (y) => y.epilogue(cliExitHelp('lkcd', 'list')).option('json', { type: 'boolean', default: false })
      .option('group', { type: 'boolean', default: false, describe: 'one line per panic signature: how many dumps, the first and the last' }), (argv) => {
      const dumpdir = dumpDirFor(rootOf(argv));
      // A missing or empty index must not hide the dumps in DUMPDIR/N: index them first (needs the DUMPDIR lock).
      const file = path.join(dumpdir, INDEX_FILE);
      const lost = (): boolean => {
        if (dumpDirNumbers(dumpdir).length === 0) return false;
        if (!fs.existsSync(file)) return true;
        const idx = DumpIndex.open(dumpdir);
        try { return idx.listDumps().length === 0; } finally { idx.close(); }
      };
      if (lost()) {
        const unlock = acquireSaveLock(dumpdir);
        try {
          const index = DumpIndex.open(dumpdir);
          try {
            recoverEmptyIndex(index, dumpdir, 'lkcd list', (l) => (argv.json ? process.stderr.write(`${l}\n`) : out(`${l}\n`)));
          } finally { index.close(); }
        } finally { unlock(); }
      }
      // A new root has no index yet: an empty list, not an error.
      if (!fs.existsSync(file)) {
        out(argv.json ? '[]\n' : `no dumps in ${dumpdir}\n`);
        return;
      }
      const index = DumpIndex.open(dumpdir, { readonly: true });
      try {
        const dumps = index.listDumps();
        if (argv.group) { out(argv.json ? json(signatureGroups(dumps)) : groupsText(signatureGroups(dumps), dumpdir)); return; }
        if (argv.json) { out(json(dumps)); return; }
        if (dumps.length === 0) { out(`no dumps in ${dumpdir}\n`); return; }
        out('  N  DESIGN         FORMAT    TIME (UTC)            HOST          RELEASE             PAGES      BYTES   RATIO  STATE      SIGNATURE         PANIC\n');
        for (const d of dumps) {
          const t = new Date(d.time_sec * 1000).toISOString().replace('T', ' ').slice(0, 19);
          const state = d.state === 'complete' ? 'complete' : d.state.toUpperCase();
          out(`${String(d.n).padStart(3)}  ${d.design.padEnd(13)}  ${d.format.padEnd(8)}  ${t}  ${d.host.padEnd(12).slice(0, 12)}  ${d.release.padEnd(18).slice(0, 18)}  ${String(d.pages).padStart(7)}  ${String(d.stored_bytes).padStart(9)}  ${(d.raw_bytes / Math.max(d.stored_bytes, 1)).toFixed(2).padStart(6)}  ${state.padEnd(9)}  ${d.signature.padEnd(16)}  ${d.panic_string}${d.same_as != null ? `  (same as ${d.same_as})` : ''}\n`);
        }
      } finally { index.close(); }
    })
    .command('map <n>', 'physical memory of dump N as a picture: -o FILE.svg draws a grid of frames coloured by page class (the dump\'s own mem_map) and by what happened to each (saved compressed or raw, the dumper\'s, damaged, missing by reason, boot region, not selected), with a legend and the compression ratio per class; --text prints the same as ASCII strips', (y) => y.epilogue(cliExitHelp('lkcd', 'map')).positional('n', { type: 'string' })
      .option('o', { alias: 'output', type: 'string', describe: 'write the SVG here (0600, replaced whole; never a dump, index or machine file)' })
      .option('text', { type: 'boolean', default: false, describe: 'print ASCII strips instead' })
      .option('width', { type: 'number', default: 64, describe: 'with --text: characters a row' }), (argv) => {
      if (argv.o === undefined && !argv.text) throw new UsageError('give -o FILE.svg, or --text');
      const root = rootOf(argv);
      const conf = sysconfigFor(root);
      if (argv.o !== undefined) checkOutputPath(argv.o, lkcdProtected(root, conf));
      const o = openIndexedDump(conf.DUMPDIR, parseDumpNumber(argv.n!));
      const index = DumpIndex.open(conf.DUMPDIR, { readonly: true });
      try {
        const m = buildDumpMap(o, index);
        if (argv.text) out(dumpMapText(m, argv.width));
        if (argv.o !== undefined) {
          writeOutputFile(argv.o, Buffer.from(dumpMapSvg(m, `lkcd dump ${m.n}: ${o.rec.panic_string}`)), [...lkcdProtected(root, conf), { path: o.file, what: `dump ${o.rec.n} (${o.file})` }]);
          out(`${argv.o}: the map of dump ${m.n} (${m.frames} frames)\n`);
        }
      } finally { index.close(); o.close(); }
    })
    .command('rm <n>', 'remove saved dump N: its DUMPDIR/N and its index rows, together (crash-safe: a rerun finishes a killed removal); bounds is not lowered, so N is never reused', (y) => y.epilogue(cliExitHelp('lkcd', 'rm')).positional('n', { type: 'string' }), (argv) => {
      out(`${lkcdRemove(dumpDirFor(rootOf(argv)), parseDumpNumber(argv.n!))}\n`);
    })
    .command('show <n>', 'the header fields of the dump\'s format (LKCD\'s as crash help -L names them, a kdump-compressed file\'s disk_dump_header and kdump_sub_header, an ELF vmcore\'s program headers and notes), our figures (design, format, RLE convention), where every frame of RAM went, and where its debug vmlinux is', (y) => y.epilogue(cliExitHelp('lkcd', 'show')).positional('n', { type: 'string' }).option('json', { type: 'boolean', default: false }), (argv) => {
      const o = openIndexedDump(dumpDirFor(rootOf(argv)), parseDumpNumber(argv.n!));
      try {
        if (argv.json) out(json({ ...formatHeaders(o.dump), attrs: o.dump.attrs, record: o.rec, ranges: o.ranges, vmlinux: vmlinuxStatus(o.dir, o.rec.n, o.dump, o.syms?.byName ?? null) }));
        else out(showText(o));
      } finally { o.close(); }
    })
    .command('dmesg <n>', 'the crashed kernel\'s log, as vmcore-dmesg prints it', (y) => y.epilogue(cliExitHelp('lkcd', 'dmesg')).positional('n', { type: 'string' }), (argv) => {
      const dumpdir = dumpDirFor(rootOf(argv));
      const n = parseDumpNumber(argv.n!);
      const index = DumpIndex.open(dumpdir, { readonly: true });
      try {
        const rec = index.getDump(n);
        if (!rec) throw new DumpError('NOINPUT', `no dump ${n} in ${dumpdir} (see lkcd list)`);
        const lines = index.logLines(n);
        if (lines.length === 0 && rec.log_error) {
          throw new DumpError('NOINPUT', `dump ${n} has no kernel log: ${rec.log_error}${rec.design === 'import' ? ' (import it with --map System.map)' : ''}`);
        }
        out(formatDmesg(lines.map((l) => ({ seq: BigInt(l.seq), ts_nsec: l.ts_nsec, level: l.level, text: l.text }))));
      } finally { index.close(); }
    })
    .command('read <n>', 'bytes of physical memory from dump N (hex dump, or raw with -o)', (y) => y.epilogue(cliExitHelp('lkcd', 'read')).positional('n', { type: 'string' })
      .option('paddr', { type: 'string', describe: 'physical address' })
      .option('pfn', { type: 'string', describe: 'page frame number (reads the whole page)' })
      .option('len', { type: 'string', default: '256', describe: 'bytes to read (with --paddr)' })
      .option('o', { alias: 'output', type: 'string', describe: 'write raw bytes to this file (0600, replaced whole; never a dump, index or machine file)' })
      .conflicts('paddr', 'pfn'), (argv) => {
      if (argv.paddr === undefined && argv.pfn === undefined) throw new UsageError('give --paddr ADDR [--len L] or --pfn PFN');
      const root = rootOf(argv);
      const conf = sysconfigFor(root);
      // The output may be none of the inputs (dump.N, the index) nor a file the machine owns.
      const protect = lkcdProtected(root, conf);
      if (argv.o !== undefined) checkOutputPath(argv.o, protect);
      const o = openIndexedDump(conf.DUMPDIR, parseDumpNumber(argv.n!));
      try {
        // A dump kdumpctl save left in /var/crash is an input too.
        if (argv.o !== undefined) checkOutputPath(argv.o, [...protect, { path: o.file, what: `dump ${o.rec.n} (${o.file})` }]);
        const paddr = argv.pfn !== undefined ? parseSize(argv.pfn, '--pfn') * 4096n : parseSize(argv.paddr!, '--paddr');
        const len = argv.pfn !== undefined ? 4096 : Number(parseSize(argv.len, '--len'));
        if (len <= 0 || len > 64 << 20) throw new UsageError(`--len ${argv.len} must be between 1 and 64M`);
        const bytes = readPhysical(o.dump, paddr, len, o.ranges);
        if (argv.o !== undefined) writeOutputFile(argv.o, bytes, protect);
        else out(hexDump(paddr, bytes));
      } finally { o.close(); }
    })
    .command('search <text>', 'log lines matching TEXT across all saved dumps', (y) => y.epilogue(cliExitHelp('lkcd', 'search')).positional('text', { type: 'string' }).option('json', { type: 'boolean', default: false }), (argv) => {
      const dumpdir = dumpDirFor(rootOf(argv));
      if (!fs.existsSync(path.join(dumpdir, INDEX_FILE))) { if (argv.json) out('[]\n'); return; }
      const index = DumpIndex.open(dumpdir, { readonly: true });
      try {
        const hits = index.searchLog(argv.text!);
        // Lines of archived pstore records follow the dumps' (named by their archive path).
        const pstore = PstoreIndex.of(index).searchLog(argv.text!).map((h) => ({ pstore: path.relative(path.join(dumpdir, PSTORE_ARCHIVE_DIR), path.join(h.dir, h.file)), seq: h.seq, ts_nsec: h.ts_nsec, text: h.text }));
        if (argv.json) { out(json([...hits, ...pstore])); return; }
        for (const h of hits) out(`${h.n}: ${formatDmesg([{ seq: BigInt(h.seq), ts_nsec: h.ts_nsec, level: 0, text: h.text }])}`);
        for (const h of pstore) out(`pstore ${h.pstore}: ${formatDmesg([{ seq: BigInt(h.seq), ts_nsec: h.ts_nsec, level: 0, text: h.text }])}`);
      } finally { index.close(); }
    })
    .command('verify <n>', 'check every header, record and page of dump N against its checksums and structure, and dump.N against the index; exits 3 for a TRUNCATED dump, 4 for a DAMAGED one', (y) => y.epilogue(cliExitHelp('lkcd', 'verify')).positional('n', { type: 'string' }).option('json', { type: 'boolean', default: false }), (argv) => {
      const bar = progressBar('lkcd verify');
      let r: ReturnType<typeof verifySavedDump>;
      try {
        r = verifySavedDump(dumpDirFor(rootOf(argv)), parseDumpNumber(argv.n!), bar);
      } finally { bar.end(); }
      if (argv.json) {
        out(json({
          n: parseDumpNumber(argv.n!), state: r.integrity.state, checksum: r.integrity.checksum, line: r.line,
          damaged_pfns: r.damaged.map((p) => hex(p)),
          degraded: r.degraded ? r.degraded.message : null,
        }));
      } else out(`${r.line}\n`);
      if (r.degraded) throw r.degraded;
    })
    .command('export <n>', 'export dump N as an ELF vmcore (for crash, makedumpfile, vmcore-dmesg, gdb): pages the dump does not hold are left out of every PT_LOAD; its device dumps are NT_VMCOREDD notes before the CPU and VMCOREINFO notes', (y) => y.epilogue(cliExitHelp('lkcd', 'export')).positional('n', { type: 'string' })
      .option('elf', { type: 'boolean', demandOption: true, describe: 'ELF vmcore output (the only format)' })
      .option('o', { alias: 'output', type: 'string', demandOption: true, describe: 'output file (0600, replaced whole; never a dump, index or machine file)' }), (argv) => {
      const root = rootOf(argv);
      const conf = sysconfigFor(root);
      // Refused before anything is read: an output over dump.N, the index or a machine file.
      checkOutputPath(argv.o, lkcdProtected(root, conf));
      const o = openIndexedDump(conf.DUMPDIR, parseDumpNumber(argv.n!));
      const bar = progressBar('lkcd export');
      try {
        checkOutputPath(argv.o, [...lkcdProtected(root, conf), { path: o.file, what: `dump ${o.rec.n} (${o.file})` }]);
        const view = kernelViewOf(o.dump, o.syms?.byName ?? null);
        const r = exportDumpAsElf(o.dump, view, argv.o, bar);
        bar.end();
        out(`${argv.o}: ${r.bytes} bytes, ${r.loads.length} PT_LOADs; ${r.holePages} of the ${r.framesOfRam} frames of RAM are not in the dump and were left out (holes between the loads)` +
          `${view.text ? '' : '; no kernel-text PT_LOAD: without a System.map the kernel\'s [_text, _end) is not known'}\n`);
      } finally { o.close(); }
    })
    .command('devices <n>', 'the device dumps dump N carries (collected by the crash recovery kernel\'s drivers, saved in DUMPDIR/N/devices/); --extract NAME -o FILE copies one out', (y) => y.epilogue(cliExitHelp('lkcd', 'devices')).positional('n', { type: 'string' })
      .option('json', { type: 'boolean', default: false })
      .option('extract', { type: 'string', describe: 'the dump name to copy out (with -o)' })
      .option('o', { alias: 'output', type: 'string', describe: 'output file for --extract (0600, replaced whole; never a dump, index or machine file)' }), (argv) => {
      const root = rootOf(argv);
      const n = parseDumpNumber(argv.n!);
      if (argv.extract !== undefined) {
        if (!argv.o) throw new UsageError('devices --extract NAME needs -o FILE');
        const r = extractDeviceDump(root, n, argv.extract, argv.o);
        out(`${argv.o}: ${r.bytes} bytes\n`);
        return;
      }
      if (argv.o !== undefined) throw new UsageError('-o goes with --extract NAME');
      const rows = deviceDumpList(dumpDirFor(root), n);
      out(argv.json ? json(rows) : deviceDumpText(n, rows));
    })
    .command('analyze <n>', 'the lcrash-style report: panic, registers, tasks, memory by type, compression, last log lines', (y) => y.epilogue(cliExitHelp('lkcd', 'analyze')).positional('n', { type: 'string' }).option('json', { type: 'boolean', default: false }), (argv) => {
      const o = openIndexedDump(dumpDirFor(rootOf(argv)), parseDumpNumber(argv.n!));
      try {
        const facts = readDumpFacts(o.dump, o.syms);
        const fig = {
          pages: o.rec.pages, compressed: o.rec.pages_compressed, storedBytes: o.rec.stored_bytes, missingPages: o.rec.missing_pages,
          damagedPages: o.rec.damaged_pages, state: o.rec.state, checksum: o.rec.checksum, panic: o.rec.panic_string,
        };
        out(argv.json ? json(analysisJson(o.rec.n, o.dump, facts, fig)) : analysisText(o.rec.n, o.dump, facts, fig));
      } finally { o.close(); }
    })
    .command('pstore <action>', 'save: archive /sys/fs/pstore to DUMPDIR/pstore/<date>/, index it, link it to the dump of the same crash, then erase it from persistent RAM; list: the archived records', (y) => y.epilogue(cliExitHelp('lkcd', 'pstore'))
      .positional('action', { type: 'string', choices: ['save', 'list'] })
      .option('json', { type: 'boolean', default: false }), (argv) => {
      if (argv.action === 'save') {
        for (const l of lkcdPstoreSave(rootOf(argv)).lines) out(`${l}\n`);
        return;
      }
      const dumpdir = dumpDirFor(rootOf(argv));
      if (!fs.existsSync(path.join(dumpdir, INDEX_FILE))) { out(argv.json ? '[]\n' : pstoreListText([], dumpdir)); return; }
      const index = DumpIndex.open(dumpdir, { readonly: true });
      try {
        const rows = PstoreIndex.of(index).list();
        out(argv.json ? json(rows) : pstoreListText(rows, dumpdir));
      } finally { index.close(); }
    })
    .command('reindex', 'rebuild the index from the DUMPDIR/N directories alone, beside the old one, then swap it in; exits 4 when a dump is DAMAGED or cannot be opened', (y) => y.epilogue(cliExitHelp('lkcd', 'reindex')), (argv) => {
      const dumpdir = dumpDirFor(rootOf(argv));
      const unlock = acquireSaveLock(dumpdir);
      let report: ReturnType<typeof reindexDumpDir>;
      let pstoreRecords = 0;
      try {
        report = reindexDumpDir(dumpdir, (l) => out(`${l}\n`), (index) => { pstoreRecords = reindexPstore(index, dumpdir); });
      } finally { unlock(); }
      const k = report.indexed.length;
      out(`reindexed ${k} dump${k === 1 ? '' : 's'}${pstoreRecords ? ` and ${pstoreRecords} pstore record${pstoreRecords === 1 ? '' : 's'}` : ''} in ${dumpdir}${report.skipped.length ? `; ${report.skipped.length} skipped (${report.skipped.map((x) => x.n).join(', ')})` : ''}\n`);
      const damaged = report.indexed.filter((r) => r.state === 'damaged');
      if (damaged.length || report.skipped.length) {
        const first = damaged[0] ? degradedOf(damaged[0])!.message : `dump ${report.skipped[0].n} cannot be opened: ${report.skipped[0].reason}`;
        throw new DegradedResult('DUMP_DAMAGED', `${damaged.length} dump${damaged.length === 1 ? '' : 's'} indexed as DAMAGED, ${report.skipped.length} skipped; ${first}`, { file: dumpdir });
      }
    })
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .fail((msg, err) => { if (err) throw err; throw usageFailure('lkcd', msg, COMMANDS, hideBin(process.argv)); })
    .epilogue(cliExitHelp('lkcd'))
    .help().version(versionText('lkcd'))
    .parseAsync();
});
