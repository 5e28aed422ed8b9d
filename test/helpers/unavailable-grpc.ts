// Run inside a pod: an h2c server that answers every gRPC call at once with a trailers-only UNAVAILABLE
// (grpc-status 14), naming the pod. gRPC retry tests put it among healthy endpoints.
//   node unavailable-grpc.js PORT

import http2 from 'node:http2';

const pod = process.env.POD_NAME ?? 'unavailable';
const server = http2.createServer();
server.on('stream', (stream) => {
  stream.resume();
  stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': `${pod} is unavailable`, 'x-served-by': pod }, { endStream: true });
  stream.on('error', () => undefined);
});
server.listen(Number(process.argv[2]), '0.0.0.0');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
