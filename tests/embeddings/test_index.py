"""The vector index stays consistent with the database: it persists in a file, catches up on
rows added since, survives a damaged or half-written file, a restart and deleted images, and
is rebuilt from the database on demand (SQLite here; PostgreSQL in CI's run)."""

from datetime import timedelta

import numpy as np
import pytest
from django.core.management import call_command
from django.test import Client

from labeling.embeddings.index import (
    index_compact,
    index_dir,
    index_forget,
    index_health,
    space_index,
    space_search,
)
from labeling.embeddings.spaces import space_active
from labeling.ingest import Upload, item_ingest
from labeling.models import Embedding, Item
from tests.embeddings.conftest import encoded, photo

pytestmark = pytest.mark.django_db
NOW = timedelta(0)


@pytest.fixture
def photos(project, fashion, run_jobs):
    images, _ = fashion
    uploads = [Upload(f"p{i}.png", encoded(photo(images[200 + i]))) for i in range(12)]
    return run_jobs(item_ingest, project=project, uploads=uploads).created_ids


def add_one(project, fashion, run_jobs, index=300):
    images, _ = fashion
    uploads = [Upload("late.png", encoded(photo(images[index])))]
    return run_jobs(item_ingest, project=project, uploads=uploads).created_ids[0]


def test_the_index_file_holds_every_row_and_a_restarted_process_catches_up(
    project, photos, fashion, run_jobs
):
    space = space_active(project)
    done = index_compact(space, settle=NOW)
    assert (
        done["vectors"] == len(photos)
        and (index_dir(space) / f"{space.pk}-{done['watermark']}.usearch").exists()
    )
    index_forget()  # a new process: opens the file, nothing in its delta
    assert len(space_index(space).base) == len(photos) and len(space_index(space).delta) == 0
    late = add_one(project, fashion, run_jobs)
    index = space_index(space)
    assert len(index.delta) == 1
    row = Embedding.objects.get(space=space, item_id=late)
    vector = np.frombuffer(bytes(row.vector), dtype=np.float16).astype(np.float32)
    assert index.search(vector[None], 1)[0][0, 0] == row.pk
    health = index_health(space)
    assert health["rows"] == health["indexed"] == len(photos) + 1


def test_a_damaged_index_file_is_dropped_and_rebuilt_from_the_database(project, photos):
    space = space_active(project)
    done = index_compact(space, settle=NOW)
    path = index_dir(space) / f"{space.pk}-{done['watermark']}.usearch"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])  # a torn write
    (index_dir(space) / f"{space.pk}-999999.usearch.tmp").write_bytes(b"half")  # a crash's leftover
    index_forget()
    index = space_index(space)
    assert len(index) == len(photos) and not path.exists()
    first = Embedding.objects.filter(space=space).first()
    vector = np.frombuffer(bytes(first.vector), dtype=np.float16).astype(np.float32)
    assert index.search(vector[None], 1)[0][0, 0] == first.pk
    rebuilt = index_compact(space, rebuild=True, settle=NOW)
    assert rebuilt["vectors"] == len(photos)


def test_deleted_images_leave_search_results_and_the_next_file(project, people, photos):
    space = space_active(project)
    index_compact(space, settle=NOW)
    gone = photos[3]
    Item.objects.filter(pk=gone).delete()  # its embedding row goes with it
    admin = Client()
    admin.force_login(people["admin"])
    results = admin.get(f"/api/projects/reviews/items/{photos[0]}/similar/?k=20").json()
    ids = [r["id"] for r in results["results"]]
    assert gone not in ids and len(ids) == len(photos) - 2
    done = index_compact(space, settle=NOW)
    assert done["removed"] == 1 and done["vectors"] == len(photos) - 1
    search = space_search(space)  # reopened from the new file: neither vector nor hash is left
    assert len(search.vectors) == len(search.hashes) == len(photos) - 1


def test_rows_younger_than_the_settling_time_stay_in_the_delta(project, photos):
    space = space_active(project)
    done = index_compact(space)  # default: rows of the last minute may still be committing
    assert done["watermark"] == 0 and done["vectors"] == 0
    assert len(space_index(space)) == len(photos)


def test_the_command_reports_and_rebuilds(project, photos, capsys):
    call_command("embeddings", "reindex", "reviews")
    call_command("embeddings", "status", "reviews")
    out = capsys.readouterr().out
    assert '"embedded": 12' in out
