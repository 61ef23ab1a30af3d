/**
 * The gate every real-tool test goes through (test/helpers/tools.ts): a
 * missing tool skips its tests with the tool named in the title, and with
 * LKCD_REQUIRE_TOOLS=1 (what .ci/run sets) it fails them, naming the tool.
 * Proven on the helper itself and on a child vitest that runs a fixture
 * needing a tool no machine has, read back through vitest's JSON report.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from '../../helpers/cli.js';
import { REQUIRE_TOOLS_VAR, toolNeed } from '../../helpers/tools.js';
import { MISSING_TOOL } from '../../fixtures/require-tools/tool-name.js';

const FIXTURE_DIR = path.join(REPO, 'test', 'fixtures', 'require-tools');
const VITEST = path.join(REPO, 'node_modules', 'vitest', 'vitest.mjs');
const CHILD_SECONDS = 120;

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'lkcd-require-tools-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('toolNeed', () => {
  it('a missing tool skips with its name in the title when nothing requires it', () => {
    const need = toolNeed([MISSING_TOOL], {});
    expect(need.missing).toEqual([MISSING_TOOL]);
    expect(need.required).toBe(false);
    expect(need.skip).toBe(true);
    expect(need.reason).toBe(` [SKIPPED: ${MISSING_TOOL} not installed; .ci/run installs it]`);
  });

  it(`with ${REQUIRE_TOOLS_VAR}=1 a missing tool does not skip: its check throws, naming it`, () => {
    const need = toolNeed([MISSING_TOOL], { [REQUIRE_TOOLS_VAR]: '1' });
    expect(need.skip).toBe(false);
    expect(need.required).toBe(true);
    expect(need.reason).toContain(MISSING_TOOL);
    expect(() => need.assert()).toThrow(new RegExp(`required tool missing: ${MISSING_TOOL} not installed; ${REQUIRE_TOOLS_VAR}=1`));
  });

  it('a tool that is there neither skips nor throws, required or not', () => {
    for (const env of [{}, { [REQUIRE_TOOLS_VAR]: '1' }]) {
      const need = toolNeed([process.execPath], env);
      expect(need).toMatchObject({ missing: [], skip: false, reason: '' });
      expect(() => need.assert()).not.toThrow();
    }
  });

  it('a probe names itself and says why it is missing', () => {
    const need = toolNeed([{ name: 'python3-nothing', check: () => 'python3 cannot import nothing' }], { [REQUIRE_TOOLS_VAR]: '1' });
    expect(need.missing).toEqual(['python3-nothing']);
    expect(() => need.assert()).toThrow('python3-nothing (python3 cannot import nothing)');
  });
});

interface JsonReport {
  numFailedTests: number;
  numPassedTests: number;
  numPendingTests: number;
  testResults: Array<{ assertionResults: Array<{ title: string; status: string; failureMessages: string[] }> }>;
}

/** Runs the fixture in a child vitest with `env` added to an environment without LKCD_REQUIRE_TOOLS. */
function runFixture(name: string, env: Record<string, string>): { status: number | null; report: JsonReport } {
  const out = path.join(tmp, `${name}.json`);
  const base = { ...process.env };
  delete base[REQUIRE_TOOLS_VAR];
  const r = spawnSync(process.execPath, [VITEST, 'run', '--root', FIXTURE_DIR, '--config', path.join(FIXTURE_DIR, 'vitest.config.ts'),
    '--reporter=json', `--outputFile=${out}`], { cwd: REPO, env: { ...base, ...env }, encoding: 'utf8', timeout: CHILD_SECONDS * 1000 });
  expect(r.error, 'the child vitest did not time out').toBeUndefined();
  expect(fs.existsSync(out), `child vitest wrote no report:\n${r.stdout}\n${r.stderr}`).toBe(true);
  return { status: r.status, report: JSON.parse(fs.readFileSync(out, 'utf8')) as JsonReport };
}

describe('a child vitest running a test whose tool is missing', () => {
  it('without LKCD_REQUIRE_TOOLS: passes, the test skipped with the tool in its title', () => {
    const { status, report } = runFixture('skipped', {});
    expect(status).toBe(0);
    expect(report.numFailedTests).toBe(0);
    expect(report.numPendingTests).toBe(1);
    const [t] = report.testResults.flatMap((f) => f.assertionResults);
    expect(t.status).toBe('skipped');
    expect(t.title).toContain(`[SKIPPED: ${MISSING_TOOL} not installed`);
  });

  it('with LKCD_REQUIRE_TOOLS=1: fails, the test failed naming the tool, its body never ran', () => {
    const { status, report } = runFixture('required', { [REQUIRE_TOOLS_VAR]: '1' });
    expect(status).not.toBe(0);
    expect(report.numFailedTests).toBe(1);
    expect(report.numPendingTests).toBe(0);
    const [t] = report.testResults.flatMap((f) => f.assertionResults);
    expect(t.status).toBe('failed');
    const message = t.failureMessages.join('\n');
    expect(message).toContain(`required tool missing: ${MISSING_TOOL} not installed`);
    expect(message).not.toContain('the body ran');
  });
});
