import { Transport, type TransportOptions, groupPath, topicPath } from './transport.js';

/** Where `Admin.resetGroup` puts a group (the broker's reset body `to`). */
export type ResetTarget = 'earliest' | 'latest' | { timestamp: number } | { offsets: Record<string, number> };

export interface GroupShard {
  committed: number | null;
  newest: number | null;
  lag: number | null;
  owner: string | null;
  /** Why the shard could not be read (then the numbers are null). */
  error?: string;
}

export interface GroupInfo {
  name: string;
  /** Consumers holding a shard of the topic for the group right now. */
  members: string[];
  shards: Record<string, GroupShard>;
}

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
