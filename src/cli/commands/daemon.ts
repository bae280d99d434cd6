// bulwark daemon: run the config's jobs on their schedules until SIGTERM/SIGINT; SIGHUP reloads.
import { Daemon } from '../../daemon/daemon.js';
import type { Command } from '../command.js';

export const daemon: Command = {
  name: 'daemon',
  usage: 'bulwark daemon [--config FILE]',
  options: {},
  async run(ctx) {
    const d = new Daemon({ configPath: ctx.configPath() });
    await d.start();
    return new Promise<number>((resolve) => {
      let stopping = false;
      const stop = (sig: string): void => {
        if (stopping) return;
        stopping = true;
        process.stdout.write(`${new Date().toISOString()} ${sig}: stopping\n`);
        d.stop().then(
          (settled) => {
            resolve(0);
            // Runs past the grace period are abandoned: no snapshot of theirs is half-written.
            if (!settled) setImmediate(() => process.exit(0));
          },
          () => resolve(1),
        );
      };
      process.removeAllListeners('SIGINT');
      process.removeAllListeners('SIGTERM');
      process.on('SIGINT', () => stop('SIGINT'));
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGHUP', () => d.reload());
    });
  },
};
