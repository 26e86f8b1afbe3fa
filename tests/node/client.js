// A Node.js client of embedspace, written as a JavaScript user would write one: the
// contract loaded at run time with @grpc/proto-loader, calls made with @grpc/grpc-js.
// tests/test_node_client.py runs it against a real server and checks its answers against
// the Python stubs'.
//
//   node client.js TARGET PROTO_DIR GOOGLEAPIS_DIR COLLECTION
//
// PROTO_DIR holds embedspace/v1/embedspace.proto; GOOGLEAPIS_DIR holds
// google/rpc/status.proto and google/rpc/error_details.proto (the googleapis-common-protos
// Python package ships them). The modules are found through NODE_PATH. Prints one JSON
// object on stdout: each call's answer, or the error it ended with.
'use strict';

const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
// protobufjs decodes the error details. It is proto-loader's own dependency: resolve it from
// there rather than install a third package.
const protobuf = require(
  require.resolve('protobufjs', { paths: [path.dirname(require.resolve('@grpc/proto-loader'))] }),
);

const [target, protoDir, googleapisDir, collection] = process.argv.slice(2);
const WORDS = ['king', 'queen', 'man', 'woman', 'prince', 'princess', 'apple', 'banana'];
const DEADLINE_MS = 30000;

const definition = protoLoader.loadSync('embedspace/v1/embedspace.proto', {
  // The contract's own field names (collection, vector_form, field_violations...).
  keepCase: true,
  // Counts are uint64 (CollectionInfo.count, Count, UpsertStream's totals) and metadata
  // integers int64: the default would hand out Long objects. Numbers are exact below 2^53,
  // which no count reaches, and compare and print as plain numbers.
  longs: Number,
  enums: String,
  defaults: true,
  // Each set oneof is also named by a property of the oneof's name (`kind: 'text'`).
  oneofs: true,
  // No include directory for google/protobuf/timestamp.proto: protobufjs bundles the
  // well-known types and resolves any google/protobuf/ import to its own copy.
  includeDirs: [protoDir],
});
const { Embedspace } = grpc.loadPackageDefinition(definition).embedspace.v1;
const client = new Embedspace(target, grpc.credentials.createInsecure());

// google.rpc.Status and google.rpc.BadRequest, for the grpc-status-details-bin trailer.
const rpc = new protobuf.Root().loadSync(
  ['status.proto', 'error_details.proto'].map((f) => path.join(googleapisDir, 'google', 'rpc', f)),
  { keepCase: true },
);
const Status = rpc.lookupType('google.rpc.Status');
const BadRequest = rpc.lookupType('google.rpc.BadRequest');

function call(method, request) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + DEADLINE_MS;
    client[method](request, { deadline }, (err, reply) => (err ? reject(err) : resolve(reply)));
  });
}

// A failed call as JSON: its code, message, and the decoded google.rpc.Status details.
function describeError(err) {
  if (err.code === undefined) return { script_error: String(err.stack || err) };
  const out = { code: err.code, code_name: grpc.status[err.code], message: err.details };
  const [raw] = err.metadata ? err.metadata.get('grpc-status-details-bin') : [];
  if (raw) {
    const status = Status.decode(raw);
    out.status = { code: status.code, message: status.message, details: [] };
    for (const any of status.details) {
      const detail = { type_url: any.type_url };
      if (any.type_url === 'type.googleapis.com/google.rpc.BadRequest') {
        detail.field_violations = BadRequest.decode(any.value).field_violations.map((v) => ({
          field: v.field,
          description: v.description,
        }));
      }
      out.status.details.push(detail);
    }
  }
  return out;
}

// Floats of a packed `data` field (little-endian float32), read in place where possible.
// A decoded bytes field is a Buffer viewing the received message at whatever offset the
// field happened to sit. `new Float32Array(buf.buffer, buf.byteOffset, n)` throws RangeError
// ("start offset of Float32Array should be a multiple of 4") unless that offset is a
// multiple of 4, and on a big-endian host it would read the bytes in the wrong order. So
// view in place only when both are right, and otherwise read through a DataView, which
// takes any offset and an explicit byte order.
const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function packedFloats(buf) {
  const n = buf.byteLength / 4;
  if (LITTLE_ENDIAN_HOST && buf.byteOffset % 4 === 0) {
    return { zero_copy: true, floats: new Float32Array(buf.buffer, buf.byteOffset, n) };
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const floats = new Float32Array(n);
  for (let i = 0; i < n; i++) floats[i] = view.getFloat32(4 * i, true);
  return { zero_copy: false, floats };
}

// The same bytes placed at a chosen offset of a fresh buffer.
function placedAt(buf, offset) {
  const placed = new Uint8Array(new ArrayBuffer(buf.byteLength + offset), offset, buf.byteLength);
  placed.set(buf);
  return placed;
}

function scalar(value) {
  return value[value.kind];
}

function neighbors(reply) {
  return reply.neighbors.map((n) => ({
    id: n.id,
    score: n.score,
    metadata: Object.fromEntries(Object.entries(n.metadata).map(([k, v]) => [k, scalar(v)])),
  }));
}

async function main() {
  const out = {};
  const step = async (name, fn) => {
    try {
      out[name] = await fn();
    } catch (err) {
      out[name] = { error: describeError(err) };
    }
  };

  let vectors = null;
  await step('embed', async () => {
    const reply = await call('Embed', {
      encoder: 'minilm',
      items: WORDS.map((text) => ({ text })),
      vector_form: 'VECTOR_FORM_VALUES',
    });
    vectors = reply.vectors.map((v) => v.values);
    return {
      dims: reply.vectors.map((v) => v.dim),
      data_lengths: reply.vectors.map((v) => v.data.length),
      vectors,
    };
  });

  await step('packed', async () => {
    const reply = await call('Embed', {
      encoder: 'minilm',
      items: [{ text: 'king' }],
      vector_form: 'VECTOR_FORM_PACKED',
    });
    const [{ dim, data, values }] = reply.vectors;
    const read = (buf) => {
      const { zero_copy, floats } = packedFloats(buf);
      return { byte_offset: buf.byteOffset, zero_copy, floats: Array.from(floats) };
    };
    let naive = 'no error';
    try {
      const odd = placedAt(data, 1);
      new Float32Array(odd.buffer, odd.byteOffset, dim);
    } catch (err) {
      naive = err.constructor.name;
    }
    return {
      dim,
      values_length: values.length,
      received: read(data),
      aligned: read(placedAt(data, 4)),
      odd: read(placedAt(data, 1)),
      naive_view_at_odd_offset: naive,
    };
  });

  await step('create', () => call('CreateCollection', { collection, encoder: 'minilm' }));

  await step('upsert', () => {
    if (!vectors) throw new Error('no vectors: Embed failed');
    return call('Upsert', {
      collection,
      points: WORDS.map((id, i) => ({
        id,
        vector: { values: vectors[i] },
        metadata: { letters: { int_value: id.length } },
      })),
    });
  });

  await step('search', async () =>
    neighbors(await call('Search', { collection, query: { item: { text: 'royal' } }, k: 3 })),
  );

  await step('search_batch', async () => {
    const reply = await call('SearchBatch', {
      collection,
      queries: [
        { item: { text: 'fruit' } },
        { id: 'queen' },
        { vector: { values: vectors ? vectors[0] : [] } },
      ],
      k: 3,
    });
    return reply.results.map(neighbors);
  });

  await step('distance', () =>
    call('Distance', {
      collection,
      a: [{ id: 'king' }, { item: { text: 'woman' } }],
      b: [{ id: 'queen' }, { id: 'apple' }],
    }),
  );

  await step('most_similar', async () => {
    const reply = await call('MostSimilar', {
      collection,
      positive: [{ query: { id: 'king' } }, { query: { id: 'woman' } }],
      negative: [{ query: { id: 'man' } }],
      k: 3,
      vector_form: 'VECTOR_FORM_VALUES',
    });
    return { neighbors: neighbors(reply), vector: reply.vector.values };
  });

  // Two bad calls: the second point's vector has the wrong dimension, and k is 0.
  await step('bad_dimension', async () => {
    const ok = Array.from({ length: 384 }, (_, i) => (i === 0 ? 1 : 0));
    const short = ok.slice(1);
    const reply = await call('Upsert', {
      collection,
      points: [
        { id: 'fine', vector: { values: ok } },
        { id: 'short', vector: { values: short } },
      ],
    });
    return { unexpected_reply: reply };
  });

  await step('bad_k', async () => {
    const reply = await call('Search', { collection, query: { id: 'king' }, k: 0 });
    return { unexpected_reply: reply };
  });

  process.stdout.write(JSON.stringify(out));
}

main()
  .catch((err) => {
    process.stderr.write(`${err.stack || err}\n`);
    process.exitCode = 1;
  })
  .finally(() => client.close());
