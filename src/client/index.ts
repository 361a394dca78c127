export { Producer, type ProducerOptions, type PublishAck } from './producer.js';
export { Consumer, type ConsumerOptions, type Message } from './consumer.js';
export { Admin, type GroupInfo, type GroupShard, type ResetTarget } from './admin.js';
export { MqClientError } from './transport.js';
export type { TopicSettings } from '../api/topic-settings.js';
