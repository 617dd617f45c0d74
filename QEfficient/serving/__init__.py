"""The OpenAI-compatible server; its packages come with the [serve] extra."""

from QEfficient.utils.extras import require_extra

require_extra("serve", "The OpenAI-compatible server (QEfficient.serving)")
