// Lists the nodes a running meshnode node knows, then prints its membership events.
//
//   node watch.js [host:port] [--max-events N] [--token T]
//
// It loads the project's own .proto files with @grpc/proto-loader: no generated code.
'use strict';

const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

function parseArgs(argv) {
  const args = { addr: process.env.CLUSTER_ADDR || '127.0.0.1:4369', maxEvents: 0, token: process.env.CLUSTER_API_TOKEN || '' };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--max-events') args.maxEvents = Number(argv[++i]);
    else if (argv[i] === '--token') args.token = argv[++i];
    else args.addr = argv[i];
  }
  return args;
}

function loadService() {
  const protoDir = path.resolve(__dirname, '..', '..', 'proto');
  const def = protoLoader.loadSync('cluster/v1/membership.proto', {
    includeDirs: [protoDir],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(def).cluster.v1.MembershipService;
}

function seconds(ts) {
  return ts ? new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6)).toISOString() : '-';
}

function describe(event) {
  switch (event.kind) {
    case 'node_up':
      return `#${event.sequence} node_up   ${event.node_up.node.id}`;
    case 'node_down':
      return `#${event.sequence} node_down ${event.node_down.id} (${event.node_down.reason})`;
    case 'node_updated': {
      const n = event.node_updated.node;
      const md = Object.entries(n.metadata || {}).sort().map(([k, v]) => `${k}=${v}`).join(',') || '-';
      return `#${event.sequence} node_updated ${n.id} metadata ${md}, processes ${n.process_count}`;
    }
    case 'status_change':
      return `#${event.sequence} status    ${event.status_change.previous} -> ${event.status_change.current}`;
    case 'snapshot':
      return `snapshot: ${event.snapshot.nodes.length} known nodes, node ${event.snapshot.status}`;
    default:
      return `#${event.sequence} ${event.kind}`;
  }
}

function main() {
  const args = parseArgs(process.argv.slice(2));
  const MembershipService = loadService();
  const client = new MembershipService(args.addr, grpc.credentials.createInsecure());
  const md = new grpc.Metadata();
  if (args.token) md.set('authorization', `Bearer ${args.token}`);

  client.ListNodes({ connected_only: false }, md, (err, resp) => {
    if (err) {
      console.error(`cannot list nodes of ${args.addr}: ${err.details || err.message}`);
      process.exit(1);
    }
    console.log(`nodes known by ${args.addr}:`);
    for (const n of resp.nodes) {
      console.log(`  ${n.id}  ${n.status}  processes=${n.process_count}  last_heartbeat=${seconds(n.last_heartbeat)}`);
    }
    let seen = 0;
    const stream = client.WatchEvents({ snapshot: false }, md);
    stream.on('metadata', () => console.log('watching events (registered)'));
    stream.on('data', (resp) => {
      console.log(`${seconds(resp.event.time)} ${describe(resp.event)}`);
      seen++;
      if (args.maxEvents > 0 && seen >= args.maxEvents) {
        stream.cancel();
        client.close();
      }
    });
    stream.on('error', (e) => {
      if (e.code === grpc.status.CANCELLED) return;
      console.error(`watch ended: ${e.details || e.message}`);
      process.exit(1);
    });
  });
}

main();
