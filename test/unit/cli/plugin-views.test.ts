import { describe, expect, it } from 'vitest';
import type { PodInfo } from '../../../src/cli/plugin/kube.js';
import {
  brokerUrls,
  newSwitchoverEvent,
  statusView,
  switchoverEventCounts,
  topicsView,
} from '../../../src/cli/plugin/views.js';
import type { MessageQueueCluster } from '../../../src/operator/api/types.js';

const pod = (name: string, node: string, ip: string, ready = true): PodInfo => ({
  metadata: { name },
  spec: { nodeName: node, containers: [{ name: 'c', ports: [{ name: 'http', containerPort: 8081 }] }] },
  status: { phase: 'Running', podIP: ip, containerStatuses: [{ ready }] },
});

const cluster = {
  apiVersion: 'mysqlmq.io/v1alpha1',
  kind: 'MessageQueueCluster',
  metadata: { name: 'orders', namespace: 'shop' },
  spec: {},
  status: {
    phase: 'Degraded',
    conditions: [
      {
        type: 'Ready',
        status: 'False',
        reason: 'ShardsDegraded',
        message: 'shard-1 reads from its standby',
        lastTransitionTime: '',
      },
    ],
    shardsReady: 1,
    shardsTotal: 2,
    writableShards: 1,
    brokersReady: 1,
    brokerReplicas: 2,
    routingVersion: 7,
    lastSwitchover: {
      shard: 'shard-1',
      from: 'orders-shard-1-1',
      to: 'orders-shard-1-0',
      result: 'Failed',
      message: 'standby 500 transactions behind',
      time: '2026-12-04T16:00:00Z',
      writesPausedMs: 0,
    },
    shards: [
      {
        name: 'shard-0',
        phase: 'Healthy',
        primaryPod: 'orders-shard-0-0',
        standbyPod: 'orders-shard-0-1',
        readsFrom: 'primary',
        writable: true,
        replicationLagSeconds: 0,
        semiSync: 'active',
      },
      {
        name: 'shard-1',
        phase: 'FailedOver',
        primaryPod: 'orders-shard-1-0',
        standbyPod: 'orders-shard-1-1',
        readsFrom: 'standby',
        writable: false,
        replicationLagSeconds: null,
        semiSync: 'off',
      },
    ],
  },
} as unknown as MessageQueueCluster;

describe('kubectl mqc views', () => {
  it('status reads at a glance: why the cluster is not ready, roles with nodes, what is down', () => {
    const mysql = [
      pod('orders-shard-0-0', 'node-a', '10.0.0.1'),
      pod('orders-shard-0-1', 'node-b', '10.0.0.2'),
      pod('orders-shard-1-0', 'node-b', '10.0.0.3', false),
      pod('orders-shard-1-1', 'node-a', '10.0.0.4'),
    ];
    const brokers = [
      pod('orders-broker-b', 'node-b', '10.0.1.2', false),
      pod('orders-broker-a', 'node-a', '10.0.1.1'),
    ];
    expect(statusView(cluster, mysql, brokers).split('\n')).toEqual([
      'Cluster shop/orders: Degraded (Ready=False, ShardsDegraded)',
      'Shards ready 1/2, writable 1; brokers ready 1/2; routing v7',
      '  shard-1 reads from its standby',
      'Last switchover: shard-1 orders-shard-1-1 -> orders-shard-1-0 Failed at 2026-12-04T16:00:00Z: standby 500 transactions behind',
      '',
      'SHARD    PHASE       PRIMARY                              STANDBY                    WRITABLE  READABLE       LAG  SEMI-SYNC',
      'shard-0  Healthy     orders-shard-0-0 (node-a)            orders-shard-0-1 (node-b)  yes       yes (primary)  0s   active',
      'shard-1  FailedOver  orders-shard-1-0 (node-b) NOT READY  orders-shard-1-1 (node-a)  NO        yes (standby)  -    off',
      '',
      'BROKER           NODE    IP        READY',
      'orders-broker-a  node-a  10.0.1.1  yes',
      'orders-broker-b  node-b  10.0.1.2  NO',
    ]);
    expect(brokerUrls(brokers)).toEqual(['http://10.0.1.1:8081']);
  });

  it('brokerUrls are https:// for brokers whose port is named https (spec.brokers.tls)', () => {
    const tls: PodInfo = {
      metadata: { name: 'q-broker-1' },
      spec: { containers: [{ name: 'broker', ports: [{ name: 'https', containerPort: 8443 }] }] },
      status: { phase: 'Running', podIP: '10.0.1.9', containerStatuses: [{ ready: true }] },
    };
    expect(brokerUrls([tls])).toEqual(['https://10.0.1.9:8443']);
  });

  it('topics joins the resources naming the cluster with what the brokers know', () => {
    const resources = [
      {
        metadata: { name: 'audit-log' },
        spec: { cluster: 'orders', topicName: 'audit', retention: { maxAgeHours: 24 } },
      },
      {
        metadata: { name: 'clicks' },
        spec: { cluster: 'orders', maxDeliveries: 3 },
        status: { conditions: [{ type: 'Ready', status: 'False' }] },
      },
      { metadata: { name: 'elsewhere' }, spec: { cluster: 'other' } },
    ];
    expect(topicsView('orders', resources, ['audit', 'adhoc']).split('\n')).toEqual([
      'TOPIC   RESOURCE   READY  ON SHARDS  RETENTION  MAX DELIVERIES',
      'adhoc   -          -      yes        -                       -',
      'audit   audit-log  -      yes        24h                     -',
      'clicks  clicks     False  no         -                       3',
    ]);
    expect(topicsView('orders', undefined, ['adhoc'])).toContain('CRD is not installed');
  });

  it('switchover waits for an Event newer than the request, also when Events are deduplicated', () => {
    const old = [{ metadata: { name: 'ev1' }, reason: 'Switchover', count: 2 }];
    const before = switchoverEventCounts(old);
    expect(newSwitchoverEvent(before, old)).toBeUndefined();
    expect(newSwitchoverEvent(before, [{ ...old[0], count: 3 }])?.reason).toBe('Switchover');
    const failed = { metadata: { name: 'ev2' }, reason: 'SwitchoverFailed', message: 'standby lags' };
    expect(newSwitchoverEvent(before, [...old, failed])).toBe(failed);
    expect(newSwitchoverEvent(before, [{ metadata: { name: 'ev3' }, reason: 'FailedOver' }])).toBeUndefined();
  });
});
