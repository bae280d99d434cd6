// bulwark config validate|show: check the config file (every problem listed) or print the effective
// configuration with defaults filled in and secrets redacted.
import { loadConfig, redactConfig } from '../../config/config.js';
import { formatDuration } from '../../config/durations.js';
import { BulwarkError } from '../../errors.js';
import type { Command } from '../command.js';

export const config: Command = {
  name: 'config',
  usage: 'bulwark config validate | show   [--config FILE]',
  options: {},
  async run(ctx, args) {
    const [sub] = args;
    if (sub !== 'validate' && sub !== 'show') throw new BulwarkError('USAGE', `unknown config subcommand ${JSON.stringify(sub ?? '')}`, { hint: this.usage });
    const cfg = loadConfig(ctx.configPath());
    if (sub === 'show') {
      ctx.result(redactConfig(cfg), () => JSON.stringify(redactConfig(cfg), null, 2));
      return 0;
    }
    const jobs = Object.values(cfg.jobs);
    ctx.result({ valid: true, file: cfg.file, repositories: Object.keys(cfg.repositories), sources: Object.keys(cfg.sources), jobs: jobs.map((j) => j.name) }, () =>
      [
        `${cfg.file}: valid`,
        ...jobs.map(
          (j) =>
            `  job ${j.name}: ${j.source} -> ${j.repositories.join(', ')}, ${j.schedule !== undefined ? `schedule "${j.schedule}"${j.timezone !== undefined ? ` (${j.timezone})` : ''}` : `after ${j.dependsOn.join(', ')}`}, tier ${j.tier} (RPO ${formatDuration(j.rpoMs)}, RTO ${formatDuration(j.rtoMs)})`,
        ),
      ].join('\n'),
    );
    return 0;
  },
};
