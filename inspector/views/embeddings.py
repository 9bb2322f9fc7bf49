"""Admin pages of the embedding side: similar images, reused photos with the shop catalog,
prototype classes, the label recheck queue and the embedding spaces."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods

from inspector.views.items import serve_file
from labeling.access import Role, project_for_user
from labeling.embeddings.catalog import catalog_delete, catalog_upload
from labeling.embeddings.label_review import label_review_decide
from labeling.embeddings.prototypes import prototype_create
from labeling.embeddings.reuse import reuse_decide, reuse_matches, reuse_policy_set
from labeling.embeddings.search import similar_images
from labeling.embeddings.state import embedding_state
from labeling.errors import ServiceError
from labeling.ingest import Upload
from labeling.models import (
    CatalogImage,
    Item,
    LabelReview,
    Prototype,
    ReusePolicy,
    ReuseStatus,
    ReviewStatus,
)

ADMINS = (Role.ADMIN,)
PAGE_SIZE = 100


@login_required
@require_http_methods(["GET"])
def similar(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=ADMINS)
    item = get_object_or_404(Item.objects.select_related("final_label"), project=project, pk=pk)
    try:
        k = max(1, min(50, int(request.GET.get("k", 12))))
    except ValueError:
        k = 12
    neighbours, problem = [], ""
    try:
        neighbours = similar_images(project=project, item_id=item.pk, k=k)
    except ServiceError as exc:
        problem = exc.message
    return render(
        request,
        "similar.html",
        {"project": project, "item": item, "neighbours": neighbours, "k": k, "problem": problem},
    )


@login_required
@require_http_methods(["GET"])
def reuse(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=ADMINS)
    wanted = request.GET.get("status", ReuseStatus.OPEN)
    if wanted not in ReuseStatus.values:
        wanted = ReuseStatus.OPEN
    matches = reuse_matches(project=project, status=wanted)
    return render(
        request,
        "reuse.html",
        {
            "project": project,
            "matches": matches[:PAGE_SIZE],
            "total": matches.count(),
            "status": wanted,
            "statuses": ReuseStatus.choices,
            "policies": ReusePolicy.choices,
        },
    )


@login_required
@require_http_methods(["POST"])
def reuse_decision(request: HttpRequest, slug: str, item_id: int) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=ADMINS)
    decision = request.POST.get("decision")
    if decision not in ("confirm", "dismiss"):
        messages.error(request, "Choose confirm or dismiss.")
        return redirect("reuse", slug=project.slug)
    try:
        reuse_decide(
            project=project, item_id=item_id, confirmed=decision == "confirm", by=request.user
        )
    except ServiceError as exc:
        messages.error(request, f"Image {item_id}: {exc.message}")
    else:
        done = "confirmed as reused: no credit" if decision == "confirm" else "not a reuse"
        messages.success(request, f"Image {item_id}: {done}.")
    return redirect("reuse", slug=project.slug)


@login_required
@require_http_methods(["POST"])
def reuse_policy(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=ADMINS)
    try:
        reuse_policy_set(project=project, policy=request.POST.get("reuse_policy", ""))
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Reused photos: {project.get_reuse_policy_display().lower()}.")
    return redirect("reuse", slug=project.slug)


@login_required
@require_http_methods(["GET", "POST"])
def catalog(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=ADMINS)
    report = None
    if request.method == "POST":
        files = request.FILES.getlist("files")
        if not files:
            messages.error(request, "Choose one or more catalog photos to upload.")
            return redirect("catalog", slug=project.slug)
        report = catalog_upload(
            project=project, uploads=[Upload(f.name, f) for f in files], by=request.user
        )
    photos = CatalogImage.objects.filter(project=project)
    return render(
        request,
        "catalog.html",
        {
            "project": project,
            "report": report,
            "photos": photos[:200],
            "total": photos.count(),
        },
    )


@login_required
@require_http_methods(["POST"])
def catalog_remove(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=ADMINS)
    if catalog_delete(project=project, catalog_id=pk):
        messages.success(request, f"Catalog photo {pk} deleted.")
    else:
        messages.error(request, f"There is no catalog photo {pk}.")
    return redirect("catalog", slug=project.slug)


def _catalog_photo(request: HttpRequest, slug: str, pk: int) -> CatalogImage:
    project = project_for_user(request.user, slug, roles=(Role.ADMIN, Role.MANAGER))
    photo = CatalogImage.objects.filter(project=project, pk=pk).first()
    if photo is None:
        raise Http404("No such catalog photo.")
    return photo


@login_required
@require_http_methods(["GET"])
def catalog_image(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    photo = _catalog_photo(request, slug, pk)
    return serve_file(photo.image, photo.content_type)


@login_required
@require_http_methods(["GET"])
def catalog_thumbnail(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    photo = _catalog_photo(request, slug, pk)
    if photo.thumbnail:
        return serve_file(photo.thumbnail, "image/jpeg")
    return serve_file(photo.image, photo.content_type)


@login_required
@require_http_methods(["GET", "POST"])
def prototypes(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=ADMINS)
    if request.method == "POST":
        try:
            prototype = prototype_create(
                project=project,
                name=request.POST.get("name", ""),
                display_name=request.POST.get("display_name", ""),
                uploads=[Upload(f.name, f) for f in request.FILES.getlist("files")],
                by=request.user,
            )
        except ServiceError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(
                request,
                f"Label '{prototype.label}' added with {prototype.examples.count()} examples; "
                "a worker is calibrating it.",
            )
        return redirect("prototypes", slug=project.slug)
    rows = Prototype.objects.filter(project=project).select_related("label", "space")
    return render(
        request,
        "prototypes.html",
        {"project": project, "prototypes": rows, "state": embedding_state(project=project)},
    )


@login_required
@require_http_methods(["GET"])
def recheck(request: HttpRequest, slug: str) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=ADMINS)
    reviews = LabelReview.objects.filter(project=project, status=ReviewStatus.OPEN).select_related(
        "item", "given_label", "suggested_label", "model_version"
    )
    return render(
        request,
        "recheck.html",
        {
            "project": project,
            "labels": list(project.labels.all()),
            "reviews": reviews[:PAGE_SIZE],
            "total": reviews.count(),
        },
    )


@login_required
@require_http_methods(["POST"])
def recheck_decide(request: HttpRequest, slug: str, pk: int) -> HttpResponse:
    project = project_for_user(request.user, slug, roles=ADMINS)
    try:
        review = label_review_decide(
            project=project, review_id=pk, label_name=request.POST.get("label", ""), by=request.user
        )
    except ServiceError as exc:
        messages.error(request, exc.message)
    else:
        done = "label kept" if review.status == ReviewStatus.KEPT else "label changed"
        messages.success(request, f"Image {review.item_id}: {done}.")
    return redirect("recheck", slug=project.slug)
