"""Django's Redis cache backend, keeping one redis client per connection pool.

Django's RedisCacheClient builds a new ``redis.Redis`` object for every cache call, and with
redis-py 5 and later that construction is costly (it registers some 170 response callbacks):
measured as about a third of Logto's request in the accept benchmark (docs/benchmarks.md). A
``redis.Redis`` object is thread-safe and only borrows connections from its pool, so one per
pool serves every call.
"""

from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django.core.cache.backends.redis import RedisCacheClient


class PooledClientRedisCacheClient(RedisCacheClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._clients = {}

    def get_client(self, key=None, *, write=False):
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._client(connection_pool=self._get_connection_pool(write))
            self._clients[index] = client
        return client


class RedisCache(DjangoRedisCache):
    def __init__(self, server, params):
        super().__init__(server, params)
        self._class = PooledClientRedisCacheClient
