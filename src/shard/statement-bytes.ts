import { createRequire } from 'node:module';
import type mysql from 'mysql2/promise';

/**
 * Statements sent as bytes the caller wrote, not as a JavaScript string. A multi-row INSERT of
 * 1 KiB messages is up to 1 MiB: as one string it lands in V8's large-object space (over 128 KiB),
 * which cost the brokers more CPU than anything else they did per published message, and mysql2
 * then copies it into a packet anyway. Here the caller writes the statement's UTF-8 straight into
 * the buffer that becomes the packet.
 *
 * mysql2 has no public way to send bytes, so this rides on its query command: the command is made
 * for a short placeholder statement, and the packet it builds from it is swapped for one carrying
 * the caller's bytes behind the same header (command byte and, where the server takes query
 * attributes, their two bytes). Everything after the write (the answer, errors, timeouts) is
 * mysql2's own. Integration tests run every publish through it against MariaDB.
 */

/** Spare bytes a statement buffer keeps in front of the statement for the packet header. */
export const STATEMENT_HEADROOM = 7;

/** A statement's UTF-8 at `buffer[STATEMENT_HEADROOM..]`. */
export type StatementBytes = Buffer;

const PLACEHOLDER = 'DO 0';

/** The parts of mysql2's core connection, query command and packet used here (not in its types). */
interface PacketLike {
  buffer: Buffer;
  constructor: new (sequenceId: number, buffer: Buffer, start: number, end: number) => PacketLike;
}
interface CoreConnection {
  config: unknown;
  writePacket(packet: PacketLike): void;
  query(command: QueryCommand): void;
}
interface QueryCommand {
  start(packet: unknown, connection: CoreConnection): unknown;
}
type CreateQuery = (
  sql: string,
  values: undefined,
  callback: (err: Error | null, result: mysql.ResultSetHeader) => void,
  config: unknown,
) => QueryCommand;

const createQuery = (createRequire(import.meta.url)('mysql2') as { createQuery: CreateQuery }).createQuery;

/** Runs one statement (an INSERT, UPDATE, ...: no result rows) on `db` and returns its header. */
export async function queryBytes(
  db: mysql.Pool | mysql.PoolConnection,
  statement: StatementBytes,
): Promise<mysql.ResultSetHeader> {
  if (!('release' in db)) {
    const conn = await db.getConnection();
    try {
      return await queryBytes(conn, statement);
    } finally {
      conn.release();
    }
  }
  const core = (db as unknown as { connection: CoreConnection }).connection;
  return new Promise((resolve, reject) => {
    const command = createQuery(
      PLACEHOLDER,
      undefined,
      (err, result) => (err ? reject(err) : resolve(result)),
      core.config,
    );
    const start = command.start;
    command.start = function (this: QueryCommand, packet, connection) {
      const writePacket = connection.writePacket;
      connection.writePacket = (built) => {
        connection.writePacket = writePacket;
        writePacket.call(connection, withHeaderOf(built, statement));
      };
      try {
        return start.call(this, packet, connection);
      } finally {
        connection.writePacket = writePacket;
      }
    };
    core.query(command);
  });
}

/** The packet mysql2 built for the placeholder, carrying `statement` instead. */
function withHeaderOf(built: PacketLike, statement: StatementBytes): PacketLike {
  const header = built.buffer.length - Buffer.byteLength(PLACEHOLDER);
  if (header < 5 || header > STATEMENT_HEADROOM || built.buffer.toString('latin1', header) !== PLACEHOLDER) {
    throw new Error('mysql2 built an unexpected query packet: statement bytes cannot be sent');
  }
  const packet = statement.subarray(STATEMENT_HEADROOM - header);
  built.buffer.copy(packet, 0, 0, header);
  return new built.constructor(0, packet, 0, packet.length);
}
