"""Turns Synapse's generated homeserver.yaml into one for tests: this port on 127.0.0.1 only,
no federation key servers, a known registration secret, and rate limits out of the way."""
import re
import sys

path, port, secret = sys.argv[1], sys.argv[2], sys.argv[3]
text = open(path).read()
text = re.sub(r"bind_addresses:\n(\s+- [^\n]+\n)+", "bind_addresses: ['127.0.0.1']\n", text)
text = text.replace("port: 8008", f"port: {port}")
text = re.sub(r'registration_shared_secret: "[^"]*"', f'registration_shared_secret: "{secret}"', text)
text = re.sub(r"trusted_key_servers:\n(\s+- [^\n]+\n)+", "trusted_key_servers: []\n", text)
limit = "{per_second: 1000, burst_count: 1000}"
text += "\n".join([
    "",
    f"rc_message: {limit}",
    f"rc_login: {{address: {limit}, account: {limit}, failed_attempts: {limit}}}",
    f"rc_registration: {limit}",
    f"rc_joins: {{local: {limit}, remote: {limit}}}",
    f"rc_invites: {{per_room: {limit}, per_user: {limit}, per_issuer: {limit}}}",
    f"rc_admin_redaction: {limit}",
    f"rc_room_creation: {limit}",
    f"rc_joins_per_room: {limit}",
    f"rc_profile: {limit}",
    f"rc_presence: {{per_user: {limit}}}",
    f"rc_user_directory: {limit}",
    "suppress_key_server_warning: true",
    "",
])
open(path, "w").write(text)
