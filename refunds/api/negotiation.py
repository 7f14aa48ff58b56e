from rest_framework.negotiation import DefaultContentNegotiation


class AlwaysJson(DefaultContentNegotiation):
    """The API speaks JSON only: answer JSON whatever Accept says, rather than 406."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type
