#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { CorruptDumpError, DumpError, UsageError } from '../src/codec/index.js';
import { checkOutputPath, MachineRoot, resolveRoot, writeOutputFile } from '../src/machine/index.js';
import { runCli } from '../src/cli/run.js';
import { cliExitHelp } from '../src/cli/exit.js';
import fs from 'node:fs';
import path from 'node:path';
import { hex, parseSize } from '../src/codec/index.js';
import { exportDumpAsElf, verifyLkcd } from '../src/dump/index.js';
import { DumpIndex, INDEX_FILE, PstoreIndex } from '../src/store/index.js';
import { formatDmesg } from '../src/kernel/index.js';
import { progressBar } from '../src/cli/progress.js';
import { holdMachine } from '../src/cli/hold.js';
import { lkcdConfig } from './config.js';
import { indexDumpDir, lkcdSave, pagesFailingIndexCrc, sha256File } from './save.js';
import { dumpDirFor, hexDump, openIndexedDump, parseDumpNumber, readPhysical, showText, sysconfigFor } from './query.js';
import { lkcdProtected } from './sysconfig.js';
import { analysisText, readDumpFacts } from './analysis.js';
import { acquireSaveLock, readBounds, writeBounds } from './dumpdir.js';
import { vmlinuxStatus } from './debuginfo.js';
import { lkcdPstoreSave, PSTORE_ARCHIVE_DIR, pstoreListText, reindexPstore } from './pstore.js';

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
    .command('config', 'write out a dump held in memory to DUMPDEV (never over a dump lkcd save has not saved: with DUMP_SAVE=1 it is saved first), then arm the dump driver and preload kexec with crashdump=', (y) => y.epilogue(cliExitHelp('lkcd', 'config'))
      .option('force', { type: 'boolean', default: false, describe: 'write out even over a device dump lkcd save never saved' }),
    (argv) => holdMachine(rootOf(argv), 'lkcd', () => {
      lkcdConfig(rootOf(argv), (l) => out(`${l}\n`), { force: argv.force });
    }))
    .command('save', 'copy the dump on DUMPDEV to DUMPDIR/N (dump.N, map.N, kerntypes.N, analysis.N, vmlinux.N), index it, mark it saved', (y) => y.epilogue(cliExitHelp('lkcd', 'save')), (argv) => holdMachine(rootOf(argv), 'lkcd', () => {
      for (const l of lkcdSave(rootOf(argv)).lines) out(`${l}\n`);
    }))
    .command('list', 'the saved dumps', (y) => y.epilogue(cliExitHelp('lkcd', 'list')).option('json', { type: 'boolean', default: false }), (argv) => {
      const index = DumpIndex.open(dumpDirFor(rootOf(argv)), { readonly: true });
      try {
        const dumps = index.listDumps();
        if (argv.json) { out(json(dumps)); return; }
        out('  N  TIME (UTC)            HOST          RELEASE             PAGES      BYTES   RATIO  STATE      PANIC\n');
        for (const d of dumps) {
          const t = new Date(d.time_sec * 1000).toISOString().replace('T', ' ').slice(0, 19);
          out(`${String(d.n).padStart(3)}  ${t}  ${d.host.padEnd(12).slice(0, 12)}  ${d.release.padEnd(18).slice(0, 18)}  ${String(d.pages).padStart(7)}  ${String(d.stored_bytes).padStart(9)}  ${(d.raw_bytes / Math.max(d.stored_bytes, 1)).toFixed(2).padStart(6)}  ${(d.complete ? 'complete' : 'TRUNCATED').padEnd(9)}  ${d.panic_string}\n`);
        }
      } finally { index.close(); }
    })
    .command('show <n>', 'header fields (as crash help -L names them), our figures, and where its debug vmlinux is', (y) => y.epilogue(cliExitHelp('lkcd', 'show')).positional('n', { type: 'string' }).option('json', { type: 'boolean', default: false }), (argv) => {
      const o = openIndexedDump(dumpDirFor(rootOf(argv)), parseDumpNumber(argv.n!));
      try {
        if (argv.json) out(json({ header: o.dump.header, attrs: o.dump.attrs, record: o.rec, vmlinux: vmlinuxStatus(o.dir, o.rec.n, o.dump, o.syms.byName) }));
        else out(showText(o));
      } finally { o.close(); }
    })
    .command('dmesg <n>', 'the crashed kernel\'s log, as vmcore-dmesg prints it', (y) => y.epilogue(cliExitHelp('lkcd', 'dmesg')).positional('n', { type: 'string' }), (argv) => {
      const dumpdir = dumpDirFor(rootOf(argv));
      const n = parseDumpNumber(argv.n!);
      const index = DumpIndex.open(dumpdir, { readonly: true });
      try {
        if (!index.getDump(n)) throw new DumpError('NOINPUT', `no dump ${n} in ${dumpdir} (see lkcd list)`);
        out(formatDmesg(index.logLines(n).map((l) => ({ seq: BigInt(l.seq), ts_nsec: l.ts_nsec, level: l.level, text: l.text }))));
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
        const paddr = argv.pfn !== undefined ? parseSize(argv.pfn, '--pfn') * 4096n : parseSize(argv.paddr!, '--paddr');
        const len = argv.pfn !== undefined ? 4096 : Number(parseSize(argv.len, '--len'));
        if (len <= 0 || len > 64 << 20) throw new UsageError(`--len ${argv.len} must be between 1 and 64M`);
        const bytes = readPhysical(o.dump, paddr, len);
        if (argv.o !== undefined) writeOutputFile(argv.o, bytes, protect);
        else out(hexDump(paddr, bytes));
      } finally { o.close(); }
    })
    .command('search <text>', 'log lines matching TEXT across all saved dumps', (y) => y.epilogue(cliExitHelp('lkcd', 'search')).positional('text', { type: 'string' }).option('json', { type: 'boolean', default: false }), (argv) => {
      const dumpdir = dumpDirFor(rootOf(argv));
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
    .command('verify <n>', 'check every record and page of dump N and its checksum; non-zero exit on any fault', (y) => y.epilogue(cliExitHelp('lkcd', 'verify')).positional('n', { type: 'string' }), (argv) => {
      const dumpdir = dumpDirFor(rootOf(argv));
      const o = openIndexedDump(dumpdir, parseDumpNumber(argv.n!));
      const file = o.file;
      const rec = o.rec;
      o.close();
      const bar = progressBar('lkcd verify');
      const v = verifyLkcd(file, bar);
      bar.end();
      const index = DumpIndex.open(dumpdir, { readonly: true });
      let crcBad: ReturnType<typeof pagesFailingIndexCrc>;
      try { crcBad = pagesFailingIndexCrc(file, index.iteratePages(rec.n)); } finally { index.close(); }
      if (crcBad.length) {
        const b = crcBad[0];
        throw new CorruptDumpError(`${file}: ${crcBad.length} page${crcBad.length > 1 ? 's' : ''} changed since saved; first: page ${hex(b.pfn)} (paddr ${hex(b.pfn * 4096n)}) at offset ${b.offset}: data CRC32 does not match the index`, { file });
      }
      const sha = sha256File(file);
      if (v.bad.length) {
        const b = v.bad[0];
        throw new CorruptDumpError(`${file}: ${v.bad.length} bad page${v.bad.length > 1 ? 's' : ''}; first: ${b.pfn === null ? '' : `page ${hex(b.pfn)} (paddr ${hex(b.pfn * 4096n)}) `}at offset ${b.offset}: ${b.error.message}`, { file });
      }
      if (sha !== rec.sha256) throw new CorruptDumpError(`${file}: sha256 ${sha} does not match the index (${rec.sha256})`, { file });
      if (v.pages !== rec.pages) throw new CorruptDumpError(`${file}: ${v.pages} pages, the index says ${rec.pages}`, { file });
      out(`dump ${rec.n}: ${v.pages} pages verified (${v.compressed} compressed, ${v.raw} raw), sha256 matches${v.truncated ? '; TRUNCATED dump' : ''}\n`);
    })
    .command('export <n>', 'export dump N as an ELF vmcore (for crash, makedumpfile, vmcore-dmesg, gdb)', (y) => y.epilogue(cliExitHelp('lkcd', 'export')).positional('n', { type: 'string' })
      .option('elf', { type: 'boolean', demandOption: true, describe: 'ELF vmcore output (the only format)' })
      .option('o', { alias: 'output', type: 'string', demandOption: true, describe: 'output file (0600, replaced whole; never a dump, index or machine file)' }), (argv) => {
      const root = rootOf(argv);
      const conf = sysconfigFor(root);
      // Refused before anything is read: an output over dump.N, the index or a machine file.
      checkOutputPath(argv.o, lkcdProtected(root, conf));
      const o = openIndexedDump(conf.DUMPDIR, parseDumpNumber(argv.n!));
      const bar = progressBar('lkcd export');
      try {
        const r = exportDumpAsElf(o.dump, o.syms.byName, argv.o, bar);
        bar.end();
        out(`${argv.o}: ${r.bytes} bytes\n`);
      } finally { o.close(); }
    })
    .command('analyze <n>', 'the lcrash-style report: panic, registers, tasks, memory by type, compression, last log lines', (y) => y.epilogue(cliExitHelp('lkcd', 'analyze')).positional('n', { type: 'string' }), (argv) => {
      const o = openIndexedDump(dumpDirFor(rootOf(argv)), parseDumpNumber(argv.n!));
      try {
        const facts = readDumpFacts(o.dump, o.syms);
        out(analysisText(o.rec.n, o.dump, facts, { pages: o.rec.pages, compressed: o.rec.pages_compressed, storedBytes: o.rec.stored_bytes, missingPages: o.rec.missing_pages }));
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
      const index = DumpIndex.open(dumpdir, { readonly: true });
      try {
        const rows = PstoreIndex.of(index).list();
        out(argv.json ? json(rows) : pstoreListText(rows, dumpdir));
      } finally { index.close(); }
    })
    .command('reindex', 'rebuild the index from the DUMPDIR/N directories alone', (y) => y.epilogue(cliExitHelp('lkcd', 'reindex')), (argv) => {
      const dumpdir = dumpDirFor(rootOf(argv));
      const unlock = acquireSaveLock(dumpdir);
      try {
        const file = path.join(dumpdir, INDEX_FILE);
        for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
        const index = DumpIndex.open(dumpdir);
        try {
          const ns = fs.readdirSync(dumpdir).filter((d) => /^\d+$/.test(d)).map(Number).sort((a, b) => a - b);
          for (const n of ns) indexDumpDir(index, n, path.join(dumpdir, String(n)));
          if (ns.length && readBounds(dumpdir) <= ns[ns.length - 1]) writeBounds(dumpdir, ns[ns.length - 1] + 1);
          const records = reindexPstore(index, dumpdir);
          out(`reindexed ${ns.length} dump${ns.length === 1 ? '' : 's'}${records ? ` and ${records} pstore record${records === 1 ? '' : 's'}` : ''} in ${dumpdir}\n`);
        } finally { index.close(); }
      } finally { unlock(); }
    })
    .demandCommand(1, 'name a command (see --help)')
    .strict()
    .fail((msg, err) => { if (err) throw err; throw new UsageError(msg); })
    .epilogue(cliExitHelp('lkcd'))
    .help().version(false)
    .parseAsync();
});
