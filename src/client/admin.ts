import type { GroupInfo, GroupShard, ResetTarget } from '../api/groups.js';
import { Transport, type TransportOptions, groupPath, topicPath } from './transport.js';

export type { GroupInfo, GroupShard, ResetTarget };

/**
 * Consumer-group administration: list a topic's groups, move a group (reset), delete one. A reset
 * or delete is refused with `group_active` (409) while consumers hold shards, unless `force`, and
 * with `shard_read_only` (503) while a shard's primary is down. Like every call, a 5xx is tried on
 * the next broker, here for 5 s by default: an operator at a terminal wants the refusal soon.
 */
export class Admin {
  private readonly transport: Transport;

  constructor(options: TransportOptions) {
    this.transport = new Transport({ timeoutMs: 5000, ...options });
  }

  async listGroups(topic: string): Promise<GroupInfo[]> {
    return (await this.transport.call<{ groups: GroupInfo[] }>('GET', `${topicPath(topic)}/groups`)).groups;
  }

  /** Returns the group's new committed offset per shard. */
  async resetGroup(
    topic: string,
    group: string,
    to: ResetTarget,
    options: { force?: boolean } = {},
  ): Promise<Record<string, number>> {
    const res = await this.transport.call<{ offsets: Record<string, number> }>(
      'POST',
      `${groupPath(topic, group)}/reset`,
      { to, force: options.force ?? false },
    );
    return res.offsets;
  }

  async deleteGroup(topic: string, group: string, options: { force?: boolean } = {}): Promise<void> {
    await this.transport.call('DELETE', `${groupPath(topic, group)}${options.force ? '?force=true' : ''}`);
  }
}
