from rest_framework import serializers

from .models import Contact, ContactType


class ContactTypeSerializer(serializers.ModelSerializer):
    class Meta:
        model = ContactType
        fields = ["type_id", "type_name"]


class ContactSerializer(serializers.ModelSerializer):
    contact_type = ContactTypeSerializer(read_only=True)
    phone_number = serializers.SlugRelatedField(
        source="phones", slug_field="phone_number", many=True, read_only=True
    )
    email = serializers.SlugRelatedField(
        source="emails", slug_field="email_address", many=True, read_only=True
    )

    class Meta:
        model = Contact
        fields = [
            "contact_id",
            "first_name",
            "last_name",
            "contact_type",
            "phone_number",
            "email",
        ]


class PageParamsSerializer(serializers.Serializer):
    """The query parameters of /contacts/fetch and /contacts/for."""

    limit = serializers.IntegerField(min_value=1, max_value=200, default=100)
    offset = serializers.IntegerField(min_value=0, max_value=2147483647, default=0)
    starts = serializers.CharField(
        min_length=1, max_length=100, trim_whitespace=False, required=False
    )
