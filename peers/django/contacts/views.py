"""The contacts API (see shared/API.md) as Django REST framework views."""

from django.db.models import Prefetch, Value
from django.db.models.functions import Lower
from rest_framework import generics
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from .models import Contact, ContactEmail, ContactPhone, ContactType
from .serializers import ContactSerializer, ContactTypeSerializer, PageParamsSerializer

VERSION = "0.1.0"


def contacts():
    """Contacts with their type, phones and emails (NULLs left out, in id order)."""
    return Contact.objects.select_related("contact_type").prefetch_related(
        Prefetch(
            "phones",
            queryset=ContactPhone.objects.filter(phone_number__isnull=False).order_by("phone_id"),
        ),
        Prefetch(
            "emails",
            queryset=ContactEmail.objects.filter(email_address__isnull=False).order_by("email_id"),
        ),
    )


def fib(n: int) -> int:
    return 1 if n < 2 else fib(n - 1) + fib(n - 2)


class VersionView(APIView):
    def get(self, request):
        return Response({"version": VERSION})


class ContactTypeList(generics.ListAPIView):
    queryset = ContactType.objects.order_by("type_id")
    serializer_class = ContactTypeSerializer


class ContactPage(generics.ListAPIView):
    """A page of contacts in contact_id order: ?limit=&offset=&starts=."""

    serializer_class = ContactSerializer

    def get_queryset(self):
        params = PageParamsSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        page = params.validated_data
        queryset = contacts().order_by("contact_id")
        if "starts" in page:
            # lower(last_name) LIKE lower(starts) || '%', with %, _ and \ escaped.
            queryset = queryset.alias(last_name_lower=Lower("last_name")).filter(
                last_name_lower__startswith=Lower(Value(page["starts"]))
            )
        return queryset[page["offset"] : page["offset"] + page["limit"]]


class ContactFetch(ContactPage):
    pass


class ContactFor(ContactPage):
    """The same page, consumed row by row from a server-side cursor (from an
    ordinary one behind a transaction-mode pooler: settings.py)."""

    def get_queryset(self):
        return super().get_queryset().iterator(chunk_size=100)


class ContactDetail(APIView):
    def get(self, request, contact_id):
        contact = contacts().filter(contact_id=contact_id).first()
        if contact is None:
            raise NotFound("Contact not found")
        return Response(ContactSerializer(contact).data)


class FibonacciView(APIView):
    def get(self, request, n):
        if n > 40:
            raise ValidationError({"n": ["Ensure this value is less than or equal to 40."]})
        return Response({"result": fib(n)})
