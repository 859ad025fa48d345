/**
 * `xenbackup run`: the cron job. Wires the config, the log (LOGFILE and the
 * terminal), signal handling, the job itself (run/run-job.ts) and the mailed
 * report, and turns the outcome into the documented exit code.
 */
import type { Command } from 'commander';
import { ConfigError, loadConfig, type Config } from '../config/settings.js';
import { sendReport } from '../report/mail.js';
import { exitCodeFor, type RunReport } from '../report/run-report.js';
import { formatBody, formatSubject } from '../report/format.js';
import { openLogFile } from '../report/sinks.js';
import { createLogger, type LogSink } from '../util/log.js';
import { createTerminalSink } from '../report/sinks.js';
import { describePlan } from '../run/plan.js';
import { preflight } from '../run/preflight.js';
import { runJob } from '../run/run-job.js';
import { CliError, EXIT } from './common.js';
import { EXIT_CODES_HELP } from './exit-codes.js';

export function loadConfigOrExit(o: { config: string; volumes?: string }): Config {
  try {
    return loadConfig({ configPath: o.config, volumesPath: o.volumes });
  } catch (e) {
    if (e instanceof ConfigError) throw new CliError(e.message, EXIT.usage);
    throw e;
  }
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('the nightly job: snapshot, mount, archive and release every configured volume, then mail the report')
    .option('-c, --config <file>', 'the configuration', '/etc/xenbackup.conf')
    .option('--volumes <file>', 'the volume table (default: SBCONFIGFILE from the config, /etc/xenback_vols)')
    .option('--dry-run', 'print what would happen and touch nothing')
    .option('--full', 'full backups for every volume this time')
    .option('--lock-wait <seconds>', 'wait this long for another run to finish instead of exiting 3 at once', '0')
    .option('-q, --quiet', 'terminal: only warnings and errors (the log file gets everything)')
    .option('-v, --verbose', 'terminal: also debug lines (every command run)')
    .addHelpText('after', `
Examples:
  xenbackup run                       # what cron runs (see install-cron)
  xenbackup run --dry-run             # the plan: volumes in order, full or incremental;
                                      # exit 2 when \`xenbackup check\` finds a problem
  xenbackup run --full --lock-wait 600
${EXIT_CODES_HELP}`)
    .action(async (o: { config: string; volumes?: string; dryRun?: boolean; full?: boolean; lockWait: string; quiet?: boolean; verbose?: boolean }) => {
      const cfg = loadConfigOrExit(o);
      const lockWait = Number(o.lockWait);
      if (!(lockWait >= 0)) throw new CliError(`--lock-wait must be a number of seconds, not "${o.lockWait}"`);
      if (o.dryRun) {
        // The checks of `check` (touching nothing): a plan that would fail is not a plan, it is exit 2.
        // Chains are read only from the right medium: another filesystem mounted there would mislead.
        const checked = await preflight(cfg);
        process.stdout.write('xenbackup run --dry-run: nothing will be touched. The run would do:\n');
        for (const l of await describePlan(cfg, { mediumMounted: checked.mediumMounted, forceFull: !!o.full, now: new Date() })) process.stdout.write(`  ${l}\n`);
        if (checked.problems.length > 0) {
          process.stderr.write(`xenbackup run --dry-run: the run would fail; ${checked.problems.length} problem${checked.problems.length === 1 ? '' : 's'} (as xenbackup check finds them):\n`);
          for (const p of checked.problems) process.stderr.write(`  - ${p}\n`);
          process.exitCode = EXIT.usage;
        }
        return;
      }
      const verbosity = o.quiet ? 'quiet' : o.verbose ? 'verbose' : 'normal';
      const terminal = createTerminalSink({ verbosity });
      let logFile: ReturnType<typeof openLogFile>;
      try {
        logFile = openLogFile(cfg.logFile);
      } catch (e) {
        // a LOGFILE that can't be opened is a config problem, found before anything is touched
        throw new CliError(`${(e as Error).message} (LOGFILE, ${cfg.sources['LOGFILE']})`, EXIT.usage);
      }
      const sinks: LogSink[] = [terminal.sink, logFile.sink];
      // The logger passes everything; each sink keeps its own level (the log file keeps debug lines).
      const log = createLogger(sinks, 'debug');
      const controller = new AbortController();
      const onSignal = (sig: NodeJS.Signals): void => {
        if (!controller.signal.aborted) {
          log.warn(`received ${sig}: stopping after releasing snapshots and mounts`);
          controller.abort(sig);
        }
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      process.on('SIGHUP', onSignal);
      let report: RunReport;
      try {
        log.info(`xenbackup run started (pid ${process.pid}, config ${cfg.configPath}, ${cfg.volumes.length} volumes${cfg.backupDom0 ? ' + dom0/root' : ''})`);
        report = await runJob(cfg, { lockWaitSeconds: lockWait, forceFull: !!o.full, logger: log, signal: controller.signal, progress: terminal.progress });
      } finally {
        terminal.clearProgress();
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        process.off('SIGHUP', onSignal);
      }
      if (report.aborted) log.error(report.aborted.message);
      const subject = formatSubject(report);
      log.info(`outcome: ${subject}`);
      for (const line of formatBody(report).split('\n')) log.debug(`report: ${line}`);
      const mail = await sendReport(report, {
        from: cfg.emailFrom,
        to: cfg.emailTo,
        sendmailPath: cfg.sendmailPath,
        smtpUrl: cfg.smtpUrl,
        when: cfg.reportWhen,
        logger: log,
      });
      if (mail.status === 'failed') log.error(`the report could not be mailed: ${mail.error}`);
      let code = exitCodeFor(report, mail);
      log.info(`xenbackup run finished: exit ${code}`);
      logFile.close();
      if (logFile.error) {
        process.stderr.write(`xenbackup: writing ${cfg.logFile} failed: ${logFile.error.message}\n`);
        // the log is a step of the run too: a run whose log is lost is not an OK
        if (code === EXIT.ok) code = EXIT.failed;
      }
      process.exitCode = code;
    });
}
