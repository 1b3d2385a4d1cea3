# The PL/Python half of the plv8 host (tier-2 testing where plv8 is not installed). This is the body
# of df._pgd_bridge_init(): it starts one Node process per database session (as plv8 keeps one
# context per session) and stores the bridge in GD. Each df.* shim calls GD['pgd'].call(...); the
# Node process runs the extension's own plv8 code and sends back plv8.execute / elog / subtransaction
# requests, which run here through SPI in the caller's transaction, as the caller.
import json
import subprocess

NODE = '@NODE@'
HOST_JS = '@HOST_JS@'
FUNCTIONS_JSON = '@FUNCTIONS_JSON@'
# SPI result codes whose results carry rows (plv8's SPIResultToValue): UTILITY, SELECT,
# INSERT/DELETE/UPDATE_RETURNING, REWRITTEN.
ROW_STATUSES = (4, 5, 11, 12, 13, 14)


def _sqlstate(code):
    # PostgreSQL's MAKE_SQLSTATE packing (five 6-bit characters), undone.
    if not isinstance(code, int):
        return None
    return ''.join(chr(((code >> (6 * i)) & 0x3f) + 48) for i in range(5))


def _jsonable(value):
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)  # Decimal and anything else: its text form; the host converts by type OID


class Bridge(object):
    def __init__(self):
        self.proc = subprocess.Popen([NODE, HOST_JS, FUNCTIONS_JSON], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.plans = {}
        self.subtxns = []

    def send(self, message):
        self.proc.stdin.write((json.dumps(message, default=_jsonable) + '\n').encode('utf-8'))
        self.proc.stdin.flush()

    def recv(self):
        line = self.proc.stdout.readline()
        if not line:
            GD.pop('pgd', None)
            plpy.error('pg_durable plv8 host process exited unexpectedly (exit code %s)' % self.proc.poll())
        return json.loads(line.decode('utf-8'))

    def call(self, name, args):
        self.send({'op': 'call', 'fn': name, 'args': args})
        while True:
            m = self.recv()
            op = m['op']
            if op == 'return':
                return m['value']
            if op == 'error':
                kwargs = {'sqlstate': m.get('sqlstate') or 'XX000'}
                if m.get('detail'):
                    kwargs['detail'] = m['detail']
                if m.get('hint'):
                    kwargs['hint'] = m['hint']
                if m.get('context'):
                    # carried to df._host_raise by the wrapper, which raises it as CONTEXT
                    kwargs['constraint_name'] = m['context']
                plpy.error(m['message'], **kwargs)
            elif op == 'execute':
                self.send(self.execute(m))
            elif op == 'elog':
                getattr(plpy, m['level'])(m['message'])
            elif op == 'subtxn':
                self.send(self.subtxn(m['action']))
            else:
                plpy.error('pg_durable plv8 host: unknown message %r' % op)

    def execute(self, m):
        sql = m['sql']
        params = m.get('params') or []
        try:
            if params:
                key = (sql, tuple(m['types']))
                plan = self.plans.get(key)
                if plan is None:
                    if len(self.plans) > 500:
                        self.plans.clear()
                    plan = plpy.prepare(sql, m['types'])
                    self.plans[key] = plan
                res = plpy.execute(plan, params)
            else:
                res = plpy.execute(sql)
        except plpy.SPIError as e:
            # PL/Python keeps the error's fields in `spidata`: (sqlerrcode, detail, hint, ...).
            spidata = getattr(e, 'spidata', None) or (None, None, None)
            return {'op': 'result', 'ok': False, 'message': e.args[0] if e.args else str(e),
                    'sqlstate': getattr(e, 'sqlstate', None) or _sqlstate(spidata[0]),
                    'detail': spidata[1], 'hint': spidata[2]}
        try:
            names = res.colnames()
            types = res.coltypes()
        except Exception:
            names = None
        if names is None or res.status() not in ROW_STATUSES:
            return {'op': 'result', 'ok': True, 'count': res.nrows()}
        return {'op': 'result', 'ok': True, 'cols': names, 'types': types,
                'rows': [[row[n] for n in names] for row in res]}

    def subtxn(self, action):
        if action == 'begin':
            s = plpy.subtransaction()
            s.__enter__()
            self.subtxns.append(s)
        elif action == 'commit':
            self.subtxns.pop().__exit__(None, None, None)
        else:
            self.subtxns.pop().__exit__(Exception, Exception('rolled back by plv8.subtransaction'), None)
        return {'op': 'result', 'ok': True}


GD['pgd'] = Bridge()
