"""The study's four tables. The schema belongs to sql/schema.sql, so Django
does not manage (migrate) it."""

from django.db import models


class ContactType(models.Model):
    type_id = models.AutoField(primary_key=True)
    type_name = models.CharField(max_length=30, null=True)

    class Meta:
        managed = False
        db_table = "contact_types"


class Contact(models.Model):
    contact_id = models.AutoField(primary_key=True)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100)
    contact_type = models.ForeignKey(ContactType, on_delete=models.PROTECT, db_column="type_id")

    class Meta:
        managed = False
        db_table = "contacts"


class ContactPhone(models.Model):
    phone_id = models.AutoField(primary_key=True)
    phone_number = models.CharField(max_length=30, null=True)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="phones")

    class Meta:
        managed = False
        db_table = "contact_phones"


class ContactEmail(models.Model):
    email_id = models.AutoField(primary_key=True)
    email_address = models.CharField(max_length=256, null=True)
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="emails")

    class Meta:
        managed = False
        db_table = "contact_emails"
