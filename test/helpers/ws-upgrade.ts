import WebSocket from 'ws';

/** A WebSocket upgrade to `url` (ws:// or http://): 101 when it opens, else the refusal's status and JSON body. */
export function wsUpgrade(url: string, headers: Record<string, string>): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), { headers });
    ws.on('error', reject);
    ws.once('open', () => (ws.close(), resolve({ status: 101, body: undefined })));
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => (ws.terminate(), resolve({ status: res.statusCode!, body: text ? JSON.parse(text) : undefined })));
    });
  });
}
