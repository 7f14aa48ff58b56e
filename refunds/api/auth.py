"""Bearer API keys (API.md): one merchant and one scope per key, stored hashed, revocable."""

from dataclasses import dataclass

from rest_framework.authentication import BaseAuthentication
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.permissions import BasePermission

from merchants import sql
from merchants.models import ApiKey, Merchant

# Our keys are about 50 characters; anything much longer is not one of them.
MAX_KEY_LENGTH = 200
# Every request runs it (see merchants/sql.py for why it is plain SQL); key_hash is unique.
_KEY_WITH_MERCHANT = (
    f"SELECT {sql.columns(ApiKey, 'k')}, {sql.columns(Merchant, 'm')} FROM {sql.table(ApiKey)} k "
    f"JOIN {sql.table(Merchant)} m ON m.id = k.merchant_id WHERE k.key_hash = %s"
)


@dataclass(frozen=True)
class ApiClient:
    """`request.user` of an API request: whoever holds the key."""

    key: ApiKey
    is_authenticated = True

    @property
    def merchant(self) -> Merchant:
        return self.key.merchant

    @property
    def actor(self) -> str:
        """Who did it, for the audit trail."""
        return f"api:{self.key.merchant.code}"


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <key>`. No header: anonymous (refused with 401 by HasScope)."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw = header.strip().partition(" ")
        raw = raw.strip()
        if scheme.lower() != "bearer" or not raw:
            raise AuthenticationFailed("use the header Authorization: Bearer <api key>")
        key = None
        if len(raw) <= MAX_KEY_LENGTH:
            rows = sql.fetch(ApiKey, _KEY_WITH_MERCHANT, [ApiKey.hash_key(raw)])
            if rows:
                key, merchant_columns = rows[0]
                key.merchant = sql.instance(Merchant, merchant_columns)
        if key is None:
            raise AuthenticationFailed("unknown API key")
        if key.revoked_at is not None:
            raise AuthenticationFailed("this API key was revoked")
        return ApiClient(key), key

    def authenticate_header(self, request) -> str:
        # Makes DRF answer 401 (not 403) with WWW-Authenticate when there is no valid key.
        return "Bearer"


class HasScope(BasePermission):
    """The view's `scopes`: the key scopes allowed to call it. Wrong scope: 403 FORBIDDEN."""

    def has_permission(self, request, view) -> bool:
        key = request.auth
        if not isinstance(key, ApiKey):
            return False  # DRF turns this into 401 NotAuthenticated: no key was given
        scopes = getattr(view, "scopes", ())
        if key.scope in scopes:
            return True
        self.message = f"this needs an API key of scope {' or '.join(scopes)}; this key's scope is {key.scope}"
        return False
